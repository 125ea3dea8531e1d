// Issue 2, point 4: what the result reports is what the job did.
import { expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';

const MiB = 1024 * 1024;

describePrivileged('sandbox accounting', () => {
  const h = useSandboxes();

  it('reports ~1 s of CPU for a job that burns 1 s of CPU (within 10%)', async () => {
    const r = await h.run({
      argv: ['/probe', 'spin', '1000'],
      files: [h.probeFile()],
      limits: { cpus: 1, timeoutMs: 10_000 },
    });
    expect(r.status).toBe('ok');
    const cpu = r.usage.cpuUserMs + r.usage.cpuSystemMs;
    expect(cpu).toBeGreaterThanOrEqual(900);
    expect(cpu).toBeLessThanOrEqual(1100);
  });

  it('holds a job to its CPU share (0.5 CPU: about half a second of CPU per second)', async () => {
    const r = await h.run({
      argv: ['/probe', 'spin', '400'],
      files: [h.probeFile()],
      limits: { cpus: 0.5, timeoutMs: 10_000 },
    });
    expect(r.status).toBe('ok');
    expect(r.usage.wallMs).toBeGreaterThan(700); // 400 ms of CPU at half a core takes ~800 ms
  });

  it('reports a memory peak of at least 100 MB for a job that touches 100 MB', async () => {
    const r = await h.run({
      argv: ['/probe', 'alloc', '100'],
      files: [h.probeFile()],
      limits: { memoryBytes: 256 * MiB },
    });
    expect(r.status).toBe('ok');
    expect(r.out).toBe('touched\n');
    expect(r.usage.memoryPeakBytes).toBeGreaterThanOrEqual(100 * MiB);
    expect(r.usage.oomKilled).toBe(false);
  });

  it('has the job in its cgroup before its first instruction: an immediate allocation past the limit is caught', async () => {
    const r = await h.run({
      argv: ['/probe', 'alloc', '64'],
      files: [h.probeFile()],
      limits: { memoryBytes: 16 * MiB },
    });
    expect(r.status).toBe('oom');
    expect(r.out).toBe('');
  });

  it('reports exit codes, signals and phase timings', async () => {
    expect(await h.run({ argv: ['sh', '-c', 'exit 7'] })).toMatchObject({
      status: 'nonzero_exit',
      exitCode: 7,
      signal: null,
    });
    const crash = await h.run({ argv: ['/probe', 'segv'], files: [h.probeFile()] });
    expect(crash).toMatchObject({ status: 'signaled', exitCode: null, signal: 'SIGSEGV' });
    const ok = await h.run({ argv: ['true'] });
    expect(ok).toMatchObject({ status: 'ok', exitCode: 0, signal: null });
    expect(ok.timings.setupMs).toBeGreaterThan(0);
    expect(ok.timings.runMs).toBeGreaterThan(0);
    expect(ok.timings.teardownMs).toBeGreaterThan(0);
    // The setup steps account for the setup time (each rounded to 0.01 ms).
    const steps = Object.values(ok.setupSteps!);
    expect(steps).toHaveLength(5);
    for (const ms of steps) expect(ms).toBeGreaterThanOrEqual(0);
    expect(Math.abs(steps.reduce((a, b) => a + b, 0) - ok.timings.setupMs)).toBeLessThan(0.1);
  });

  it('passes stdin to the job', async () => {
    const r = await h.run({ argv: ['sh', '-c', 'wc -c; cat /dev/null'], stdin: Buffer.alloc(300_000, 'a') });
    expect(r.out.trim()).toBe('300000');
  });
});
