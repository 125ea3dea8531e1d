// When each image was last used (images/access.json), for the least-recently-used eviction behind `gc --max-size`
// and the LAST USED column of `lid images ls`. Use is recorded at most once a minute per image and per store, so
// the hot path of resolving an image stays a memory lookup. The store records, the catalog and GC read: this file
// sits below all three, so none of them needs another to reach it.
import fs from 'node:fs';
import type { StoreLayout } from './store-layout.js';

const ACCESS_GRANULARITY_MS = 60_000;

export class AccessLog {
  private readonly lastWritten = new Map<string, number>();

  constructor(
    private readonly layout: StoreLayout,
    /** A fresh temporary path in the store, for the atomic rewrite. */
    private readonly tempPath: (label: string) => string,
  ) {}

  /** name:tag -> milliseconds since the epoch of its last use; {} before any. */
  read(): Record<string, number> {
    try {
      return JSON.parse(fs.readFileSync(this.layout.accessFile, 'utf8')) as Record<string, number>;
    } catch {
      return {};
    }
  }

  /** Records that an image was used now (skipped when this store recorded it within the last minute). */
  touch(name: string): void {
    const now = Date.now();
    if (now - (this.lastWritten.get(name) ?? 0) < ACCESS_GRANULARITY_MS) return;
    this.lastWritten.set(name, now);
    const access = this.read();
    access[name] = now;
    const tmp = this.tempPath('access');
    fs.writeFileSync(tmp, JSON.stringify(access));
    fs.renameSync(tmp, this.layout.accessFile);
  }
}
