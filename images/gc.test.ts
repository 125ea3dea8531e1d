// GC on a store of many images (test/synthetic-store.ts): what a size cap evicts and what then goes must be exactly
// what the rule says, worked out here the plain way: least recently used first, never an image a live process
// holds, stop once the blobs and layers that names still need fit; then remove every blob and layer no name needs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { syntheticStore } from '../test/synthetic-store.js';
import { collectGarbage } from './gc.js';
import { Leases } from './leases.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-gc-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function du(p: string): number {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  const inside = st.isDirectory() ? fs.readdirSync(p).map((n) => du(path.join(p, n))) : [];
  return st.blocks * 512 + inside.reduce((a, b) => a + b, 0);
}

describe('gc of a store with many images', () => {
  it(
    'evicts and removes exactly what the size cap and the leases say, on 500 images',
    { timeout: 60_000 },
    async () => {
      const { store, images } = await syntheticStore(path.join(tmp, 'many'), { count: 500, families: 10 });
      const needs = (i: (typeof images)[number]) => [i.manifestDigest, ...i.blobs];
      const size = new Map<string, number>();
      for (const i of images) for (const d of needs(i)) size.set(d, du(store.blobPath(d)) + du(store.layout.layer(d)));
      const liveBytes = (left: typeof images) =>
        [...new Set(left.flatMap(needs))].reduce((n, d) => n + size.get(d)!, 0);

      // Three of the oldest images are in use by this process; a fourth shares only its base layer with them.
      const heldImages = [images[3]!, images[7]!, images[20]!];
      const inUse = new Set(heldImages.flatMap((i) => i.blobs));
      const release = new Leases(store.layout).acquire([...inUse]);
      const maxBytes = Math.floor(liveBytes(images) * 0.4);

      const expectedEvicted: string[] = [];
      let left = [...images];
      for (const image of [...images].sort((a, b) => a.lastUsed - b.lastUsed)) {
        if (liveBytes(left) <= maxBytes) break;
        if (needs(image).some((d) => inUse.has(d))) continue;
        left = left.filter((i) => i !== image);
        expectedEvicted.push(image.name);
      }
      const keptBlobs = new Set([...left.flatMap(needs), ...inUse]);
      const allBlobs = new Set(images.flatMap(needs));
      const layerBlobs = new Set(images.flatMap((i) => i.blobs.slice(1)));

      // Work grows with the images, not with their square: each manifest is read once, however many are evicted.
      const manifestReads = vi.spyOn(store, 'manifest');
      const result = await collectGarbage(store, { maxBytes });
      release();
      expect(manifestReads).toHaveBeenCalledTimes(images.length);

      expect(expectedEvicted.length).toBeGreaterThan(250); // the cap bites hard: this is the many-evictions case
      expect(result.evicted).toEqual(expectedEvicted);
      expect(Object.keys(store.refs()).sort()).toEqual(left.map((i) => i.name).sort());
      for (const held of heldImages) expect(store.refs()[held.name]).toBe(held.manifestDigest);
      const blobsNow = new Set(fs.readdirSync(store.layout.blobsDir).map((h) => `sha256:${h}`));
      expect(blobsNow).toEqual(keptBlobs);
      const layersNow = new Set(fs.readdirSync(store.layout.layersDir).map((h) => `sha256:${h}`));
      expect(layersNow).toEqual(new Set([...keptBlobs].filter((d) => layerBlobs.has(d))));
      expect(result.removedBlobs).toBe(allBlobs.size - keptBlobs.size);
      expect(result.removedLayers).toBe(layerBlobs.size - layersNow.size);
      expect(liveBytes(left)).toBeLessThanOrEqual(maxBytes);

      // Nothing is left to collect, and without a cap nothing more is evicted.
      expect(await collectGarbage(store)).toEqual({ removedBlobs: 0, removedLayers: 0, freedBytes: 0, evicted: [] });
    },
  );
});
