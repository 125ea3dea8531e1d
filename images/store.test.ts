// The image store against real files, real processes and the real runtime: imports from the formats tools write,
// overlay whiteouts honoured inside a job, one unpack across processes, crash safety, GC and leases.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SandboxRuntime } from '../runtime/index.js';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';
import { listImages, removeImage } from './catalog.js';
import { collectGarbage } from './gc.js';
import { importImage } from './import.js';
import { ImageStore } from './store.js';

const child = new URL('../test/store-child.ts', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-store-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(tmp, `case-${++n}`);

describePrivileged('image store', () => {
  let runtime: SandboxRuntime;
  beforeAll(async () => {
    runtime = await SandboxRuntime.start({ threads: 1 });
  });
  afterAll(() => runtime?.close());

  const runIn = async (store: ImageStore, name: string, script: string) => {
    const { image, release } = await store.acquire(name);
    try {
      const r = await runtime.run({ rootfs: image.layerDirs, argv: ['sh', '-c', script] });
      return Buffer.from(r.stdout).toString();
    } finally {
      release();
    }
  };

  it('imports an OCI layout, unpacks each layer once, and survives a reopen', async () => {
    const layoutDir = fresh();
    const img = await writeOciLayout(layoutDir, {
      layers: [busyboxLayer()],
      refName: 'demo:1',
      config: { Cmd: ['sh'] },
    });
    const data = fresh();
    const store = ImageStore.open(data);
    expect(await importImage(store, layoutDir)).toEqual([
      { name: 'demo:1', manifestDigest: img.manifestDigest, unchanged: false },
    ]);
    const first = await store.resolve('demo:1');
    expect(first.layerDirs).toEqual([store.layout.layer(img.layerDigests[0]!)]);
    expect(await runIn(store, 'demo:1', 'echo hi; id -u')).toBe('hi\n65534\n');
    const reopened = ImageStore.open(data);
    await reopened.resolve('demo:1');
    expect(reopened.layersUnpackedHere).toBe(0);
    expect(listImages(reopened).map((i) => i.name)).toEqual(['demo:1']);
  });

  it('makes whiteouts and opaque directories real inside the job', async () => {
    const layoutDir = fresh();
    await writeOciLayout(layoutDir, {
      refName: 'wh:1',
      layers: [
        busyboxLayer([
          { type: 'directory', name: 'a' },
          { type: 'file', name: 'a/gone', content: 'x' },
          { type: 'file', name: 'a/kept', content: 'x' },
          { type: 'directory', name: 'b' },
          { type: 'file', name: 'b/old', content: 'x' },
        ]),
        [
          { type: 'file', name: 'a/.wh.gone', content: '' },
          { type: 'directory', name: 'b' },
          { type: 'file', name: 'b/.wh..wh..opq', content: '' },
          { type: 'file', name: 'b/new', content: 'x' },
        ],
      ],
    });
    const store = ImageStore.open(fresh());
    await importImage(store, layoutDir);
    expect(await runIn(store, 'wh:1', 'ls /a; echo --; ls /b')).toBe('kept\n--\nnew\n');
  });

  it('imports oci-archive and docker-archive files written by skopeo', async () => {
    const layoutDir = fresh();
    const img = await writeOciLayout(layoutDir, { layers: [busyboxLayer()], refName: 'latest' });
    const ociArchive = path.join(tmp, `oci-${n}.tar`);
    const dockerArchive = path.join(tmp, `docker-${n}.tar`);
    execFileSync('skopeo', ['copy', '-q', `oci:${layoutDir}:latest`, `oci-archive:${ociArchive}:latest`]);
    execFileSync('skopeo', ['copy', '-q', `oci:${layoutDir}:latest`, `docker-archive:${dockerArchive}:saved/app:2`]);
    const store = ImageStore.open(fresh());
    await expect(importImage(store, ociArchive)).rejects.toThrow(/only the tag "latest"\): give one with --name/);
    expect(await importImage(store, ociArchive, { name: 'from-oci-archive' })).toEqual([
      { name: 'from-oci-archive:latest', manifestDigest: img.manifestDigest, unchanged: false },
    ]);
    const [docker] = await importImage(store, dockerArchive);
    expect(docker!.name).toBe('saved/app:2');
    expect(await runIn(store, 'saved/app:2', 'echo from docker')).toBe('from docker\n');
  });

  it('refuses a layout whose blob does not match its digest, storing nothing under that digest', async () => {
    const layoutDir = fresh();
    const img = await writeOciLayout(layoutDir, { layers: [busyboxLayer()], refName: 'x:1' });
    const blob = path.join(layoutDir, 'blobs', 'sha256', img.layerDigests[0]!.slice(7));
    fs.appendFileSync(blob, 'tampered');
    const store = ImageStore.open(fresh());
    await expect(importImage(store, layoutDir)).rejects.toMatchObject({ code: 'invalid_image' });
    expect(store.hasBlob(img.layerDigests[0]!)).toBe(false);
    expect(fs.readdirSync(store.layout.tmpDir)).toEqual([]);
    expect(listImages(store)).toEqual([]);
  });

  it('unpacks a layer once when two processes need it at the same time', async () => {
    const layoutDir = fresh();
    await writeOciLayout(layoutDir, {
      layers: [busyboxLayer([{ type: 'file', name: 'big', content: Buffer.alloc(32 << 20, 7) }])],
      refName: 'race:1',
    });
    const data = fresh();
    await importImage(ImageStore.open(data), layoutDir);
    const run = () =>
      new Promise<string>((resolve) => {
        const c = spawn(process.execPath, ['--import', 'tsx', child, 'resolve', data, 'race:1'], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d));
        c.on('exit', () => resolve(out.trim()));
      });
    const results = await Promise.all([run(), run()]);
    expect(results.sort()).toEqual(['unpacked 0', 'unpacked 1']);
  });

  it(
    'never uses a half-unpacked layer after a crash, and sweeps what the crash left',
    { timeout: 120_000 },
    async () => {
      const layoutDir = fresh();
      await writeOciLayout(layoutDir, {
        layers: [busyboxLayer([{ type: 'file', name: 'big', content: Buffer.alloc(256 << 20, 1) }])],
        gzip: false,
        refName: 'crash:1',
      });
      const data = fresh();
      const store = ImageStore.open(data);
      const [img] = await importImage(store, layoutDir);
      const c = spawn(process.execPath, ['--import', 'tsx', child, 'resolve', data, 'crash:1'], { stdio: 'ignore' });
      const tmpDir = store.layout.tmpDir;
      for (let i = 0; i < 400 && !fs.readdirSync(tmpDir).some((f) => f.includes('-layer')); i++)
        await new Promise((r) => setTimeout(r, 25));
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
      expect(fs.readdirSync(tmpDir).some((f) => f.includes('-layer'))).toBe(true); // caught mid-unpack
      const manifest = store.manifest(img!.manifestDigest);
      expect(fs.existsSync(store.layout.layer(manifest.layers[0]!.digest))).toBe(false);
      const next = ImageStore.open(data);
      expect(fs.readdirSync(tmpDir)).toEqual([]);
      expect(await runIn(next, 'crash:1', 'wc -c < /big')).toBe(`${256 << 20}\n`);
    },
  );

  it('collects what no image refers to, keeping shared layers and anything a live process holds', async () => {
    const base = busyboxLayer();
    const a = fresh();
    const b = fresh();
    const imgA = await writeOciLayout(a, {
      layers: [base, [{ type: 'file', name: 'a', content: 'a' }]],
      refName: 'gc/a:1',
    });
    const imgB = await writeOciLayout(b, {
      layers: [base, [{ type: 'file', name: 'b', content: 'b' }]],
      refName: 'gc/b:1',
    });
    const data = fresh();
    const store = ImageStore.open(data);
    await importImage(store, a);
    await importImage(store, b);
    await store.resolve('gc/a:1');
    await store.resolve('gc/b:1');
    expect(imgA.layerDigests[0]).toBe(imgB.layerDigests[0]);
    await removeImage(store, 'gc/a:1');
    const r = await collectGarbage(store);
    expect(r).toMatchObject({ removedLayers: 1, removedBlobs: 3, evicted: [] });
    expect(fs.existsSync(store.layout.layer(imgA.layerDigests[0]!))).toBe(true); // shared with b
    expect(fs.existsSync(store.layout.layer(imgA.layerDigests[1]!))).toBe(false);

    // b is held by another process: a size cap of zero evicts nothing while it lives.
    const holder = spawn(process.execPath, ['--import', 'tsx', child, 'hold', data, 'gc/b:1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    expect((await collectGarbage(store, { maxBytes: 0 })).evicted).toEqual([]);
    expect(await runIn(store, 'gc/b:1', 'cat /b')).toBe('b');
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const evict = await collectGarbage(store, { maxBytes: 0 });
    expect(evict.evicted).toEqual(['gc/b:1']);
    expect(fs.readdirSync(store.layout.layersDir)).toEqual([]);
    expect(fs.readdirSync(store.layout.blobsDir)).toEqual([]);
  });

  it('answers unknown names and bad sources with errors that say what to do', async () => {
    const store = ImageStore.open(fresh());
    await expect(store.resolve('nope')).rejects.toThrow(/no image named nope:latest/);
    await expect(importImage(store, '/no/such/path')).rejects.toMatchObject({ code: 'not_found' });
    const empty = fresh();
    fs.mkdirSync(empty);
    await expect(importImage(store, empty)).rejects.toThrow(/neither an OCI image layout/);
  });
});
