// Which layers live processes are using, so that GC never deletes a layer under a running job. Each process keeps
// one lease file (leases/<pid>-<start>.json, rewritten atomically on change) listing the layer digests it holds;
// the file of a process that is gone no longer protects anything and is swept.
import fs from 'node:fs';
import path from 'node:path';
import { currentInstanceName, isInstanceDead } from '../common/process-instance.js';
import type { StoreLayout } from './store-layout.js';

export class Leases {
  private readonly held = new Map<string, number>(); // layer digest -> holders in this process
  private readonly file: string;

  constructor(private readonly layout: StoreLayout) {
    this.file = path.join(layout.leasesDir, `${currentInstanceName()}.json`);
  }

  /** Marks layers as in use until the returned release is called (idempotent). */
  acquire(layerDigests: string[]): () => void {
    for (const d of layerDigests) this.held.set(d, (this.held.get(d) ?? 0) + 1);
    this.write();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const d of layerDigests) {
        const n = (this.held.get(d) ?? 1) - 1;
        if (n > 0) this.held.set(d, n);
        else this.held.delete(d);
      }
      this.write();
    };
  }

  private write(): void {
    if (this.held.size === 0) {
      fs.rmSync(this.file, { force: true });
      return;
    }
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify([...this.held.keys()].sort()));
    fs.renameSync(tmp, this.file);
  }

  /** Every layer some live process holds (across all processes sharing the store). */
  static inUse(layout: StoreLayout): Set<string> {
    const used = new Set<string>();
    for (const name of fs.readdirSync(layout.leasesDir)) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(layout.leasesDir, name);
      if (isInstanceDead(name)) {
        fs.rmSync(file, { force: true });
        continue;
      }
      try {
        for (const d of JSON.parse(fs.readFileSync(file, 'utf8')) as string[]) used.add(d);
      } catch {
        /* being rewritten right now: its previous content was renamed over, try the next */
      }
    }
    return used;
  }
}
