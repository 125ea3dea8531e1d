// What the store holds, for people: list, inspect and remove. It reads the store (one direction only: the store
// never imports the catalog; last use is the store's own access-log.ts).
import { LidError } from '../common/errors.js';
import type { ImageConfig, Manifest } from './oci.js';
import { normalizeName } from '../common/image-reference.js';
import type { ImageStore } from './store.js';

export interface ImageSummary {
  name: string;
  manifestDigest: string;
  /** Compressed size: config + layer blobs */
  size: number;
  layers: number;
  lastUsed: string | null;
}

export function listImages(store: ImageStore): ImageSummary[] {
  const access = store.access.read();
  return Object.entries(store.refs())
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, manifestDigest]) => {
      const manifest = store.manifest(manifestDigest);
      return {
        name,
        manifestDigest,
        size: manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
        layers: manifest.layers.length,
        lastUsed: access[name] ? new Date(access[name]).toISOString() : null,
      };
    });
}

export function inspectImage(
  store: ImageStore,
  name: string,
): { name: string; manifestDigest: string; manifest: Manifest; config: ImageConfig } {
  const manifestDigest = store.lookup(name);
  const manifest = store.manifest(manifestDigest);
  return { name: normalizeName(name), manifestDigest, manifest, config: store.config(manifest) };
}

/** Removes a name. Its blobs and layers stay until `gc` finds nothing else refers to them. */
export async function removeImage(store: ImageStore, name: string): Promise<void> {
  const key = normalizeName(name);
  let found = false;
  await store.updateRefs((refs) => {
    found = key in refs;
    delete refs[key];
  });
  if (!found) throw new LidError('not_found', `no image named ${key} in the store`);
}
