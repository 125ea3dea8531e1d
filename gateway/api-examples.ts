// Examples shown in /openapi.json and on /docs: one realistic request, record and error, kept together so the
// reference reads as one story (submit this, get that back).
export const API_EXAMPLES = {
  jobRequest: {
    image: 'python',
    command: ['python3', '/work/main.py'],
    files: [{ path: '/work/main.py', content: 'import sys\nprint(sys.stdin.read().upper())\n' }],
    stdin: 'hello',
    env: { PYTHONUNBUFFERED: '1' },
    limits: { timeoutMs: 5000, memoryBytes: 134217728 },
    network: { allow: ['pypi.org', '*.pythonhosted.org:443'] },
    priority: 5,
    metadata: { submission: '42' },
  },
  jobRecord: {
    id: 'job_3fQk0aZ8b1XyWq2mNcVd',
    tenant: 'acme',
    image: 'python',
    state: 'completed',
    createdAt: '2026-11-28T10:00:00.000Z',
    startedAt: '2026-11-28T10:00:00.012Z',
    finishedAt: '2026-11-28T10:00:00.061Z',
    queueMs: 12,
    attempts: 1,
    result: {
      status: 'ok',
      exitCode: 0,
      signal: null,
      stdout: 'HELLO\n',
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      usage: { wallMs: 41.2, cpuUserMs: 30, cpuSystemMs: 8, memoryPeakBytes: 9437184, pidsPeak: 1, oomKilled: false },
    },
    traceId: null,
    metadata: { submission: '42' },
    network: { allow: ['pypi.org', '*.pythonhosted.org:443'] },
  },
  batchRequest: {
    jobs: [
      { image: 'busybox', command: ['echo', 'one'] },
      { image: 'busybox', command: ['echo', 'two'] },
    ],
  },
  error: {
    error: {
      code: 'invalid_spec',
      message: "limits.timeoutMs 120000 is above this tenant's ceiling of 60000",
      details: [
        {
          path: 'limits.timeoutMs',
          message: "limits.timeoutMs 120000 is above this tenant's ceiling of 60000",
          asked: 120000,
          ceiling: 60000,
        },
      ],
    },
  },
} as const;
