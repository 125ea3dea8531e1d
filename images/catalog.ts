// What the store holds, for people: list, inspect, remove, and the least-recently-used bookkeeping behind the
// size cap. Last use is recorded at most once a minute per image, so the hot path of resolving an image stays a
// memory lookup.
import fs from 'node:fs';
import { LidError } from '../common/errors.js';
import type { ImageConfig, Manifest } from './oci.js';
import { normalizeName } from './reference.js';
import type { ImageStore } from './store.js';

export interface ImageSummary {
  name: string;
  manifestDigest: string;
  /** Compressed size: config + layer blobs */
  size: number;
  layers: number;
  lastUsed: string | null;
}

const ACCESS_GRANULARITY_MS = 60_000;

function readAccess(store: ImageStore): Record<string, number> {
  try {
    return JSON.parse(fs.readFileSync(store.layout.accessFile, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

const lastWritten = new Map<string, number>();

/** Records that an image was used now (cheaply: skipped when recorded within the last minute by this process). */
export function touchImage(store: ImageStore, name: string): void {
  const now = Date.now();
  if (now - (lastWritten.get(name) ?? 0) < ACCESS_GRANULARITY_MS) return;
  lastWritten.set(name, now);
  const access = readAccess(store);
  access[name] = now;
  const tmp = store.tempPath('access');
  fs.writeFileSync(tmp, JSON.stringify(access));
  fs.renameSync(tmp, store.layout.accessFile);
}

export function lastUsed(store: ImageStore): Record<string, number> {
  return readAccess(store);
}

export function listImages(store: ImageStore): ImageSummary[] {
  const access = readAccess(store);
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
