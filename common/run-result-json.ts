// How a RunResult becomes JSON, for the API and the CLI alike. The one encoding is the API's: the `result` of a job
// record (JobResultRecord, what GET /v1/jobs/:id, ?wait, the final event and callbacks carry), which is the public
// contract. Output goes through common/output-encoding.ts (text when it is valid UTF-8 and escaping would not more
// than double it, else base64 in a sibling field), and the runtime's phase timings join its usage.
//
// `lid sandbox run --json` prints a view of the same encoding: the runtime's usage, timings and setup steps stay
// apart there, as the README documents that output (people tuning the sandbox read the phases).
import type { JobResultRecord } from './job.js';
import { encodeOutput } from './output-encoding.js';
import type { RunResult, RunTimings, RunUsage, SetupSteps } from './run-spec.js';

/** A RunResult as a job record's `result`. */
export function encodeRunResult(result: RunResult): JobResultRecord {
  return {
    status: result.status,
    exitCode: result.exitCode,
    signal: result.signal,
    ...(encodeOutput('stdout', result.stdout) as { stdout: string | null }),
    ...(encodeOutput('stderr', result.stderr) as { stderr: string | null }),
    stdoutTruncated: result.stdoutTruncated,
    stderrTruncated: result.stderrTruncated,
    usage: { ...result.usage, ...result.timings },
  };
}

/** What `lid sandbox run --json` prints: the record's fields, with usage, timings and setup steps apart. */
export type RunResultView = Omit<JobResultRecord, 'usage'> & {
  usage: RunUsage;
  timings: RunTimings;
  setupSteps?: SetupSteps;
};

export function runResultView(result: RunResult): RunResultView {
  const { usage: _withTimings, ...record } = encodeRunResult(result);
  return {
    ...record,
    usage: result.usage,
    timings: result.timings,
    ...(result.setupSteps ? { setupSteps: result.setupSteps } : {}),
  };
}
