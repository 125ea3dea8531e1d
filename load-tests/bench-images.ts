// Image store benchmark.
//   1. Unpack throughput of one large layer (uncompressed and gzip), Lid's unpacker beside GNU tar -x of the same
//      bytes, in the same run, into the same filesystem. Lid does more per entry (path checks against escapes,
//      whiteout conversion, digest of the whole stream), so tar is the ceiling to compare with.
//   2. The cost of asking for an image that is already unpacked: the hot path of every job. Target < 1 ms with
//      nothing re-read; measured in-process (repeat jobs) and in a freshly opened store (a restarted worker).
// Output: a table, then one JSON object as the last line (also saved under load-tests/reports/). Needs root (lchown,
// whiteouts). Usage: npm run bench:images -- [--mib 256] [--repeat 3]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { unpackLayer } from '../images/unpack.js';
import { type LayerEntry, layerTar, writeOciLayout } from '../test/oci-fixtures.js';

const { values: args } = parseArgs({
  options: { mib: { type: 'string', default: '256' }, repeat: { type: 'string', default: '3' } },
});
const MIB = Number(args.mib);
const REPEAT = Number(args.repeat);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-bench-images-'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** A layer shaped like a language runtime: many small files, some medium, a few large, in nested directories. */
function layerEntries(totalMiB: number): LayerEntry[] {
  const entries: LayerEntry[] = [];
  let bytes = 0;
  let i = 0;
  while (bytes < totalMiB * 1024 * 1024) {
    const dir = `usr/lib/pkg${i % 50}/sub${i % 7}`;
    if (i < 350) entries.push({ type: 'directory', name: dir });
    const size = i % 100 === 0 ? 4 << 20 : i % 10 === 0 ? 256 << 10 : 8 << 10;
    entries.push({ type: 'file', name: `${dir}/f${i}.bin`, content: Buffer.alloc(size, i % 251), mode: 0o644 });
    bytes += size;
    i++;
  }
  return entries;
}

function timeTar(archive: string, gzip: boolean): number {
  const dest = fs.mkdtempSync(path.join(work, 'tar-'));
  const t = performance.now();
  execFileSync('tar', [gzip ? '-xzf' : '-xf', archive, '-C', dest]);
  const ms = performance.now() - t;
  fs.rmSync(dest, { recursive: true, force: true });
  return ms;
}

async function timeLid(archive: string, gzip: boolean): Promise<number> {
  const dest = path.join(work, `lid-${Math.random().toString(36).slice(2)}`);
  const t = performance.now();
  await unpackLayer({
    blobPath: archive,
    mediaType: gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
    dest,
  });
  const ms = performance.now() - t;
  fs.rmSync(dest, { recursive: true, force: true });
  return ms;
}

try {
  const entries = layerEntries(MIB);
  const raw = await layerTar(entries);
  const tarFile = path.join(work, 'layer.tar');
  const gzFile = path.join(work, 'layer.tar.gz');
  fs.writeFileSync(tarFile, raw);
  fs.writeFileSync(gzFile, gzipSync(raw, { level: 6 }));
  const mb = raw.length / 1e6;
  const results: Record<string, number> = {};
  for (const gzip of [false, true]) {
    const file = gzip ? gzFile : tarFile;
    const lid: number[] = [];
    const tar: number[] = [];
    for (let r = 0; r < REPEAT; r++) {
      tar.push(timeTar(file, gzip));
      lid.push(await timeLid(file, gzip));
    }
    const key = gzip ? 'gzip' : 'tar';
    results[`lid_unpack_${key}_mb_s`] = round(mb / (median(lid) / 1000), 1);
    results[`gnu_tar_${key}_mb_s`] = round(mb / (median(tar) / 1000), 1);
  }

  // The hot path: an image already in the store.
  const layoutDir = path.join(work, 'layout');
  await writeOciLayout(layoutDir, {
    layers: [entries.slice(0, 200), [{ type: 'file', name: 'top', content: 'x' }]],
    refName: 'bench:1',
  });
  const dataDir = path.join(work, 'data');
  await importImage(ImageStore.open(dataDir), layoutDir);
  const store = ImageStore.open(dataDir);
  await store.resolve('bench:1');
  const warm: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = performance.now();
    await store.resolve('bench:1');
    warm.push(performance.now() - t);
  }
  const cold: number[] = [];
  for (let i = 0; i < 50; i++) {
    const reopened = ImageStore.open(dataDir);
    const t = performance.now();
    await reopened.resolve('bench:1');
    cold.push(performance.now() - t);
  }
  Object.assign(results, {
    cached_resolve_p50_ms: round(median(warm), 4),
    cached_resolve_p99_ms: round([...warm].sort((a, b) => a - b)[Math.floor(warm.length * 0.99)]!, 4),
    reopened_store_resolve_p50_ms: round(median(cold), 3),
    layer_mb: round(mb, 1),
    layer_files: entries.filter((e) => e.type === 'file').length,
  });

  console.log(`unpack of one ${round(mb, 0)} MB layer (${results.layer_files} files), median of ${REPEAT}:`);
  console.log(`  uncompressed  lid ${results.lid_unpack_tar_mb_s} MB/s   GNU tar -x ${results.gnu_tar_tar_mb_s} MB/s`);
  console.log(
    `  gzip          lid ${results.lid_unpack_gzip_mb_s} MB/s   GNU tar -xz ${results.gnu_tar_gzip_mb_s} MB/s`,
  );
  console.log(
    `image already cached -> layer directories ready: p50 ${results.cached_resolve_p50_ms} ms (p99 ${results.cached_resolve_p99_ms} ms)`,
  );
  console.log(
    `  after a restart (store reopened): p50 ${results.reopened_store_resolve_p50_ms} ms (reads the manifest and config once)`,
  );
  fs.mkdirSync(new URL('./reports/', import.meta.url), { recursive: true });
  fs.writeFileSync(
    new URL(`./reports/bench-images-${new Date().toISOString().replace(/:/g, '-')}.json`, import.meta.url),
    JSON.stringify(results, null, 2),
  );
  console.log(JSON.stringify(results));
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
