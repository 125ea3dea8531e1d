// sha256 digests of streams, computed while the bytes pass through, so that nothing is read twice and a blob is
// committed only when its bytes match the digest it was asked for.
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { LidError } from '../common/errors.js';

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

export function digestHex(digest: string): string {
  const match = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!match)
    throw new LidError('invalid_image', `unsupported digest ${JSON.stringify(digest)}: Lid takes sha256 digests`);
  return match[1]!;
}

/** A pass-through stream that hashes and counts what flows through it. */
export class DigestingStream extends Transform {
  private readonly hash = crypto.createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
