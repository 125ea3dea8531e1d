// runtime/: one container per call, built from kernel features through koffi. See runtime.ts for the API.
import type { RunResult, RunSpecInput } from '../common/run-spec.js';
import { type RunOptions, SandboxRuntime } from './runtime.js';

export { SandboxRuntime, DEFAULT_PATH, type RuntimeOptions, type RunOptions } from './runtime.js';
export type { RunResult, RunSpecInput, RunStatus } from '../common/run-spec.js';

let shared: Promise<SandboxRuntime> | undefined;

/**
 * Runs one command in a fresh sandbox on a process-wide runtime, started on first use. It never keeps the process
 * alive; at exit anything still running is killed and its cgroups removed. Services that want to choose the thread
 * count or the cgroup parent, or to close the runtime themselves, use SandboxRuntime.start().
 */
export async function run(spec: RunSpecInput, options: RunOptions = {}): Promise<RunResult> {
  shared ??= SandboxRuntime.start({ unref: true }).catch((e: unknown) => {
    shared = undefined; // let a later call try again (after the cause, e.g. a missing compiler, is fixed)
    throw e;
  });
  return (await shared).run(spec, options);
}
