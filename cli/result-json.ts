// The JSON shape of a RunResult for people and scripts (see common/output-encoding.ts for stdout and stderr).
import { encodeOutput } from '../common/output-encoding.js';
import type { RunResult } from '../common/run-spec.js';

export function resultToJson(result: RunResult): Record<string, unknown> {
  const { stdout, stderr, ...rest } = result;
  return { ...rest, ...encodeOutput('stdout', stdout), ...encodeOutput('stderr', stderr) };
}
