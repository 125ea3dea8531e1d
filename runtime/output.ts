// Collects one output stream of a sandbox up to its byte limit. Past the limit nothing more is kept (the worker's
// memory stays bounded however much the job writes) and the owner is told once, so it can stop the job.

export class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(
    private readonly limit: number,
    private readonly onOverflow: () => void,
    private readonly onChunk?: (chunk: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.truncated) return;
    const room = this.limit - this.kept;
    const keep = chunk.length <= room ? chunk : chunk.subarray(0, room);
    if (keep.length) {
      this.chunks.push(keep);
      this.kept += keep.length;
      this.onChunk?.(keep);
    }
    if (chunk.length > room) {
      this.truncated = true;
      this.onOverflow();
    }
  }

  /**
   * What was kept, in a buffer of its own (never a slice of Node's shared pool), so that its memory can be
   * transferred to the main thread rather than copied: an output-limited job otherwise costs its limit several times.
   */
  bytes(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.kept);
    let at = 0;
    for (const chunk of this.chunks.splice(0)) at += chunk.copy(out, at);
    return out;
  }
}
