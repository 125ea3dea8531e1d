// Garbage collection: removes blobs and unpacked layers that no name refers to, and, with a size cap, untags the
// least recently used images until the store fits -- never an image whose layers a live process holds (leases.ts).
// Runs under the refs lock, so no name can appear while it decides what is unreferenced.
import fs from 'node:fs';
import path from 'node:path';
import { Leases } from './leases.js';
import { INDEX_TYPES, IndexSchema, parseJson } from './oci.js';
import type { ImageStore } from './store.js';

export interface GcResult {
  removedBlobs: number;
  removedLayers: number;
  freedBytes: number;
  evicted: string[];
}

function duSync(p: string): number {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  let total = st.blocks * 512;
  for (const name of fs.readdirSync(p)) total += duSync(path.join(p, name));
  return total;
}

/** Blobs each image needs: its manifest, config and layers. */
function blobsOf(store: ImageStore, manifestDigest: string): string[] {
  const manifest = store.manifest(manifestDigest);
  return [manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
}

export async function collectGarbage(store: ImageStore, opts: { maxBytes?: number } = {}): Promise<GcResult> {
  const result: GcResult = { removedBlobs: 0, removedLayers: 0, freedBytes: 0, evicted: [] };
  await store.updateRefs((refs) => {
    const inUse = Leases.inUse(store.layout);
    const held = (name: string) => blobsOf(store, refs[name]!).some((d) => inUse.has(d));
    if (opts.maxBytes !== undefined) {
      const access = store.access.read();
      const sizeOf = (digests: Set<string>) =>
        [...digests].reduce((n, d) => n + duSync(store.blobPath(d)) + duSync(store.layout.layer(d)), 0);
      const live = () => new Set(Object.values(refs).flatMap((m) => blobsOf(store, m)));
      const oldestFirst = Object.keys(refs).sort((a, b) => (access[a] ?? 0) - (access[b] ?? 0));
      for (const name of oldestFirst) {
        if (sizeOf(live()) <= opts.maxBytes) break;
        if (held(name)) continue;
        delete refs[name];
        result.evicted.push(name);
      }
    }
    const keep = new Set([...Object.values(refs).flatMap((m) => blobsOf(store, m)), ...inUse]);
    for (const hex of fs.readdirSync(store.layout.blobsDir)) {
      const digest = `sha256:${hex}`;
      if (keep.has(digest)) continue;
      // An index pulled beside its platform manifest is kept while that manifest is.
      try {
        const bytes = fs.readFileSync(store.blobPath(digest));
        if (bytes.length < 65536 && INDEX_TYPES.some((t) => bytes.includes(t))) {
          const index = parseJson(IndexSchema, bytes, 'index');
          if (index.manifests.some((m) => keep.has(m.digest))) continue;
        }
      } catch {
        /* not an index */
      }
      result.freedBytes += duSync(store.blobPath(digest));
      fs.rmSync(store.blobPath(digest), { force: true });
      result.removedBlobs++;
    }
    for (const hex of fs.readdirSync(store.layout.layersDir)) {
      if (keep.has(`sha256:${hex}`)) continue;
      const dir = path.join(store.layout.layersDir, hex);
      result.freedBytes += duSync(dir);
      fs.rmSync(dir, { recursive: true, force: true });
      result.removedLayers++;
    }
  });
  return result;
}
