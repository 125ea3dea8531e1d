// How a job's output travels as JSON (the CLI's --json, the HTTP API, the queue, the events stream): UTF-8 text when
// the bytes are valid UTF-8, otherwise base64 in a sibling field, so nothing is ever silently mangled.
//
// Text is also sent as base64 when escaping it for JSON would blow it up: a control byte becomes six ("\u0000"), so
// 16 MiB of NULs would be 96 MiB in Redis and in the worker's memory, and it is stored more than once (the events
// stream, the record, the final event). With these rules a stored copy is at most 2x the output's bytes (text) or
// 4/3x (base64): a record keeps text unless it would more than double (so ordinary text, even all newlines, stays
// readable); a streamed chunk, which readers decode by its `encoding` anyway, takes whichever form is smaller.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes the UTF-8 text of `bytes` takes inside a JSON string: \n and " take 2, other control bytes 6. */
export function jsonTextBytes(bytes: Uint8Array): number {
  let n = bytes.length;
  for (const b of bytes) {
    if (b < 0x20) n += b === 0x08 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d ? 1 : 5;
    else if (b === 0x22 || b === 0x5c) n += 1;
  }
  return n;
}

const base64Bytes = (n: number) => 4 * Math.ceil(n / 3);
// A Buffer over the same memory (Buffer.from(uint8array) would copy megabytes only to encode them).
const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

function asText(bytes: Uint8Array, largest: number): string | null {
  if (jsonTextBytes(bytes) > largest) return null;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/** { stdout: "text" } or { stdout: null, stdoutBase64: "..." } (likewise for any field name). */
export function encodeOutput<K extends string>(name: K, bytes: Uint8Array): Record<string, string | null> {
  const text = asText(bytes, 2 * bytes.length);
  if (text !== null) return { [name]: text };
  return { [name]: null, [`${name}Base64`]: base64(bytes) };
}

/** One streamed chunk: text when that is no larger in JSON than base64 would be. */
export function encodeChunk(bytes: Uint8Array): { data: string; encoding: 'utf8' | 'base64' } {
  const text = asText(bytes, base64Bytes(bytes.length));
  if (text !== null) return { data: text, encoding: 'utf8' };
  return { data: base64(bytes), encoding: 'base64' };
}
