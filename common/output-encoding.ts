// How a job's output travels as JSON (the CLI's --json, the HTTP API, the queue): UTF-8 text when the bytes are
// valid UTF-8, otherwise base64 in a sibling field, so nothing is ever silently mangled.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** { stdout: "text" } or { stdout: null, stdoutBase64: "..." } (likewise for any field name). */
export function encodeOutput<K extends string>(name: K, bytes: Uint8Array): Record<string, string | null> {
  try {
    return { [name]: strictUtf8.decode(bytes) };
  } catch {
    return { [name]: null, [`${name}Base64`]: Buffer.from(bytes).toString('base64') };
  }
}
