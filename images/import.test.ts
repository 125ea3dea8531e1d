// Importing images into the store as people have them: the same image twice (a no-op that says so, not a crash),
// and one image chosen out of a layout that holds several (DIR:REF and oci-archive:FILE:REF, as skopeo names them).
// Real files, real archives written by tar and skopeo, a real store; nothing here needs a sandbox.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { importImage } from './import.js';
import { parseImportSource } from './import-source.js';
import { ImageStore } from './store.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-import-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(tmp, `case-${++n}`);

/** A layout holding one image per tag, each annotated with only its tag, as `skopeo copy ... oci:DIR:TAG` leaves it. */
async function multiTagLayout(tags: string[]): Promise<{ dir: string; digests: Record<string, string> }> {
  const dir = fresh();
  const digests: Record<string, string> = {};
  const entries: unknown[] = [];
  for (const tag of tags) {
    const one = fresh();
    const img = await writeOciLayout(one, {
      layers: [[{ type: 'file', name: 'tag', content: tag }]],
      refName: tag,
    });
    digests[tag] = img.manifestDigest;
    fs.cpSync(path.join(one, 'blobs'), path.join(dir, 'blobs'), { recursive: true });
    fs.copyFileSync(path.join(one, 'oci-layout'), path.join(dir, 'oci-layout'));
    entries.push(
      ...(JSON.parse(fs.readFileSync(path.join(one, 'index.json'), 'utf8')) as { manifests: unknown[] }).manifests,
    );
  }
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
  return { dir, digests };
}

describe('importing an image the store already has', () => {
  it('is a no-op that says the image is unchanged, from a layout directory and from archives', async () => {
    const layout = fresh();
    const img = await writeOciLayout(layout, { layers: [busyboxLayer()], refName: 'demo/app:1' });
    const ociArchive = path.join(tmp, 'again-oci.tar');
    execFileSync('tar', ['-cf', ociArchive, '-C', layout, '.']);
    const dockerArchive = path.join(tmp, 'again-docker.tar');
    execFileSync('skopeo', ['copy', '-q', `oci:${layout}:demo/app:1`, `docker-archive:${dockerArchive}:saved/app:2`]);
    const store = ImageStore.open(fresh());

    const first = { name: 'demo/app:1', manifestDigest: img.manifestDigest, unchanged: false };
    const again = { ...first, unchanged: true };
    expect(await importImage(store, layout)).toEqual([first]);
    expect(await importImage(store, layout)).toEqual([again]);
    // An archive is extracted to the store's temporary space and removed after: the crash this guards against was
    // a read stream opened on a blob the store already had, left to open after that directory was gone.
    expect(await importImage(store, ociArchive)).toEqual([again]);
    expect(await importImage(store, ociArchive, { name: 'demo/app:1' })).toEqual([again]);
    const [docker] = await importImage(store, dockerArchive);
    expect(docker).toMatchObject({ name: 'saved/app:2', unchanged: false });
    expect(await importImage(store, dockerArchive)).toEqual([{ ...docker!, unchanged: true }]);
    // Give an unhandled stream error the turns of the event loop it would need to surface.
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.readdirSync(store.layout.tmpDir)).toEqual([]);
  });

  it('says when a name moves to another image', async () => {
    const store = ImageStore.open(fresh());
    const one = fresh();
    const two = fresh();
    await writeOciLayout(one, { layers: [[{ type: 'file', name: 'v', content: '1' }]], refName: 'app:1' });
    const second = await writeOciLayout(two, { layers: [[{ type: 'file', name: 'v', content: '2' }]] });
    await importImage(store, one);
    expect(await importImage(store, two, { name: 'app:1' })).toEqual([
      { name: 'app:1', manifestDigest: second.manifestDigest, unchanged: false },
    ]);
  });
});

describe('choosing one image of a layout (DIR:REF, oci-archive:FILE:REF)', () => {
  it('reads the source as skopeo writes it: a path, then an optional transport and :REF', () => {
    const dir = fresh();
    fs.mkdirSync(dir);
    const withColon = `${dir}/a:b`;
    fs.mkdirSync(withColon);
    expect(parseImportSource(dir)).toEqual({ path: dir });
    expect(parseImportSource(`${dir}:v3`)).toEqual({ path: dir, ref: 'v3' });
    expect(parseImportSource(`${dir}:team/app:v3`)).toEqual({ path: dir, ref: 'team/app:v3' });
    expect(parseImportSource(withColon)).toEqual({ path: withColon }); // an existing path wins over a split
    expect(parseImportSource(`oci:${dir}:v3`)).toEqual({ path: dir, ref: 'v3' });
    expect(parseImportSource(`oci-archive:${dir}`)).toEqual({ path: dir });
    expect(parseImportSource(`oci-archive:${dir}:v3`)).toEqual({ path: dir, ref: 'v3' });
    expect(parseImportSource('/no/such:v3')).toEqual({ path: '/no/such:v3' }); // reported as missing, whole
  });

  it('imports the image whose ref.name annotation is REF, named by --name, from a directory and an oci-archive', async () => {
    const { dir, digests } = await multiTagLayout(['v1', 'v2', 'v3']);
    const archive = path.join(tmp, 'multi.tar');
    execFileSync('tar', ['-cf', archive, '-C', dir, '.']);
    const store = ImageStore.open(fresh());
    expect(await importImage(store, `${dir}:v3`, { name: 'x:v3' })).toEqual([
      { name: 'x:v3', manifestDigest: digests.v3, unchanged: false },
    ]);
    expect(await importImage(store, `oci-archive:${archive}:v2`, { name: 'x:v2' })).toEqual([
      { name: 'x:v2', manifestDigest: digests.v2, unchanged: false },
    ]);
    // A bare tag names no image by itself, as before.
    await expect(importImage(store, `${dir}:v1`)).rejects.toThrow(/only the tag "v1"\): give one with --name/);
    expect(Object.keys(store.refs()).sort()).toEqual(['x:v2', 'x:v3']);
  });

  it('names the image by its annotation when that is a full name', async () => {
    const dir = fresh();
    const img = await writeOciLayout(dir, { layers: [busyboxLayer()], refName: 'team/app:v3' });
    const store = ImageStore.open(fresh());
    expect(await importImage(store, `${dir}:team/app:v3`)).toEqual([
      { name: 'team/app:v3', manifestDigest: img.manifestDigest, unchanged: false },
    ]);
  });

  it('lists the refs a layout holds when none is chosen, or the one chosen is not there', async () => {
    const { dir } = await multiTagLayout(['v1', 'v2']);
    const store = ImageStore.open(fresh());
    const none = await importImage(store, dir, { name: 'x:v3' }).catch((e: unknown) => e);
    expect(none).toMatchObject({
      code: 'invalid_spec',
      message: `${dir} holds 2 images (v1, v2): choose one with ${dir}:REF, e.g. ${dir}:v1`,
    });
    await expect(importImage(store, `${dir}:v9`, { name: 'x:v9' })).rejects.toMatchObject({
      code: 'not_found',
      message: `${dir} holds no image with ref v9 (it holds: v1, v2)`,
    });
    const single = fresh();
    await writeOciLayout(single, { layers: [busyboxLayer()], refName: 'demo:1' });
    await expect(importImage(store, `${single}:demo:2`)).rejects.toThrow(
      `${single} holds no image with ref demo:2 (it holds: demo:1)`,
    );
    expect(store.refs()).toEqual({});
  });

  it('keeps choosing by --name alone when it matches an annotation (the older spelling)', async () => {
    const dir = fresh();
    const a = fresh();
    const b = fresh();
    const imgA = await writeOciLayout(a, { layers: [[{ type: 'file', name: 'a', content: 'a' }]], refName: 'app:a' });
    await writeOciLayout(b, { layers: [[{ type: 'file', name: 'b', content: 'b' }]], refName: 'app:b' });
    fs.cpSync(path.join(a, 'blobs'), path.join(dir, 'blobs'), { recursive: true });
    fs.cpSync(path.join(b, 'blobs'), path.join(dir, 'blobs'), { recursive: true });
    fs.copyFileSync(path.join(a, 'oci-layout'), path.join(dir, 'oci-layout'));
    const manifests = [a, b].flatMap(
      (d) => (JSON.parse(fs.readFileSync(path.join(d, 'index.json'), 'utf8')) as { manifests: unknown[] }).manifests,
    );
    fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
    const store = ImageStore.open(fresh());
    expect(await importImage(store, dir, { name: 'app:a' })).toEqual([
      { name: 'app:a', manifestDigest: imgA.manifestDigest, unchanged: false },
    ]);
  });

  it('refuses a REF for a docker-archive that does not hold it, listing what it holds', async () => {
    const layout = fresh();
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: 'latest' });
    const archive = path.join(tmp, 'docker-ref.tar');
    execFileSync('skopeo', ['copy', '-q', `oci:${layout}:latest`, `docker-archive:${archive}:saved/app:2`]);
    const store = ImageStore.open(fresh());
    await expect(importImage(store, `${archive}:saved/app:3`)).rejects.toThrow(
      `${archive} holds no image with ref saved/app:3 (it holds: saved/app:2)`,
    );
    expect(await importImage(store, `${archive}:saved/app:2`)).toMatchObject([{ name: 'saved/app:2' }]);
  });
});
