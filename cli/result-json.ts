// The JSON shape of a RunResult for people and scripts: output as UTF-8 text when it is valid UTF-8, otherwise as
// base64 in stdoutBase64 / stderrBase64 (with stdout / stderr null), so nothing is ever silently mangled.
import type { RunResult } from '../common/run-spec.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function encodeOutput(name: 'stdout' | 'stderr', bytes: Uint8Array): Record<string, string | null> {
  try {
    return { [name]: strictUtf8.decode(bytes) };
  } catch {
    return { [name]: null, [`${name}Base64`]: Buffer.from(bytes).toString('base64') };
  }
}

export function resultToJson(result: RunResult): Record<string, unknown> {
  const { stdout, stderr, ...rest } = result;
  return { ...rest, ...encodeOutput('stdout', stdout), ...encodeOutput('stderr', stderr) };
}
