// One RunResult, two readers: the worker stores encodeRunResult as a job record's `result` (what the API serves),
// and `lid sandbox run --json` prints runResultView. For the same run both say the same thing, bytes included: output
// that is not UTF-8 arrives as base64 and decodes to exactly what the job wrote, and the truncation flags hold.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { JobResultRecord } from './job.js';
import { encodeRunResult, runResultView } from './run-result-json.js';
import { RUN_STATUSES, type RunResult } from './run-spec.js';

const usage = { wallMs: 1.2, cpuUserMs: 0, cpuSystemMs: 0.4, memoryPeakBytes: 262_144, pidsPeak: 1, oomKilled: false };
const timings = { setupMs: 1.6, runMs: 1.2, teardownMs: 0.2 };
const setupSteps = { cgroupsMs: 0.3, namespacesMs: 0.2, spawnMs: 0.4, mountsMs: 0.6, attachMs: 0.1 };

const result = (over: Partial<RunResult> = {}): RunResult => ({
  status: 'ok',
  exitCode: 0,
  signal: null,
  stdout: Buffer.from('hello\n'),
  stderr: new Uint8Array(),
  stdoutTruncated: false,
  stderrTruncated: false,
  usage,
  timings,
  ...over,
});

/** The bytes a reader gets back from either JSON shape. */
const bytesOf = (json: Record<string, unknown>, stream: 'stdout' | 'stderr'): Buffer =>
  json[stream] === null
    ? Buffer.from(json[`${stream}Base64`] as string, 'base64')
    : Buffer.from(json[stream] as string);

it('encodes a run as the API record: output as text or base64, timings joined to usage', () => {
  const bytes = Buffer.from([0xff, 0xfe, 0x00]);
  expect(
    encodeRunResult(result({ status: 'output_limit', stdout: bytes, stderr: Buffer.from('x'), stderrTruncated: true })),
  ).toEqual({
    status: 'output_limit',
    exitCode: 0,
    signal: null,
    stdout: null,
    stdoutBase64: '//4A',
    stderr: 'x',
    stdoutTruncated: false,
    stderrTruncated: true,
    usage: { ...usage, ...timings },
  } satisfies JobResultRecord);
});

it("prints the CLI's documented view of the same encoding: usage, timings and setup steps apart", () => {
  const run = result({ setupSteps });
  const { usage: _merged, ...record } = encodeRunResult(run);
  expect(runResultView(run)).toEqual({ ...record, usage, timings, setupSteps });
  expect(Object.keys(runResultView(result()))).not.toContain('setupSteps');
});

it('gives both readers the same answer for any run: the same bytes, flags and figures', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.oneof(
        fc.string().map((s) => new Uint8Array(Buffer.from(s))),
        fc.uint8Array({ maxLength: 50 }),
      ),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom(...RUN_STATUSES),
      (stdout, stderr, stdoutTruncated, stderrTruncated, status) => {
        const run = result({ status, stdout, stderr, stdoutTruncated, stderrTruncated, setupSteps });
        // Through JSON, as the API and the CLI both hand it on.
        const api = JSON.parse(JSON.stringify(encodeRunResult(run))) as Record<string, unknown>;
        const cli = JSON.parse(JSON.stringify(runResultView(run))) as Record<string, unknown>;
        for (const stream of ['stdout', 'stderr'] as const) {
          expect(bytesOf(api, stream).equals(Buffer.from(run[stream]))).toBe(true);
          expect(cli[stream]).toEqual(api[stream]);
          expect(cli[`${stream}Base64`]).toEqual(api[`${stream}Base64`]);
          expect(cli[`${stream}Truncated`]).toBe(run[`${stream}Truncated`]);
          expect(api[`${stream}Truncated`]).toBe(run[`${stream}Truncated`]);
        }
        expect({ status: cli.status, exitCode: cli.exitCode, signal: cli.signal }).toEqual({
          status: api.status,
          exitCode: api.exitCode,
          signal: api.signal,
        });
        expect(api.usage).toEqual({ ...(cli.usage as object), ...(cli.timings as object) });
      },
    ),
  );
});
