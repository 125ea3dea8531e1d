// runtime/: one container per call, built from kernel features through koffi. See runtime.ts for the API.
export { SandboxRuntime, DEFAULT_PATH, type RuntimeOptions, type RunOptions } from './runtime.js';
export type { RunResult, RunSpecInput, RunStatus } from '../common/run-spec.js';
