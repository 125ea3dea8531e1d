// Images from Debian-package recipes. Fast unit tests first (recipe validation, path resolution inside the staging
// root, reproducible layers); then real builds with apt against Debian's mirrors, run in real sandboxes. The .debs
// are cached in os.tmpdir()/lid-deb-cache, so only the first run downloads.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLidError } from '../../common/errors.js';
import { SandboxRuntime } from '../../runtime/index.js';
import { describePrivileged } from '../../test/privileged.js';
import { buildRecipeImage } from './build.js';
import { listTree, writeLayer } from './layer-tar.js';
import { PACKAGES_ANNOTATION } from './oci-layout.js';
import { listRecipes, loadRecipe, parseRecipe } from './recipe.js';
import { resolvePackages } from './resolve.js';
import { StagingRoot } from './staging-root.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-debian-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
const fresh = (label: string) => path.join(scratch, `${label}-${++counter}`);

const valid = { name: 'x', description: 'a test', packages: ['busybox-static'], config: { Cmd: ['sh'] } };
const mistake = (patch: Record<string, unknown>) => () => parseRecipe({ ...valid, ...patch }, 'x.json');

describe('recipes', () => {
  it('ships busybox, python, node and bash, each valid and named as its file', () => {
    expect(listRecipes()).toEqual(expect.arrayContaining(['bash', 'busybox', 'node', 'python']));
    for (const name of listRecipes()) expect(loadRecipe(name).name).toBe(name);
  });

  it('names the field of each mistake', () => {
    expect(mistake({ packages: [] })).toThrow(/^invalid recipe x\.json: packages: must name at least one package$/);
    expect(mistake({ packages: ['-o=x'] })).toThrow(/packages\.0: must be a Debian package name/);
    expect(mistake({ packages: ['bash', 'bash'] })).toThrow(/packages: must not name a package twice/);
    expect(mistake({ name: '../etc' })).toThrow(/name: must be 1-64 of/);
    expect(mistake({ config: { Cmd: 'sh' } })).toThrow(/config\.Cmd: Invalid input: expected array/);
    expect(mistake({ config: { Env: ['PATH'] } })).toThrow(/config\.Env\.0: must be NAME=VALUE/);
    expect(mistake({ config: { Entrypont: ['sh'] } })).toThrow(/config: Unrecognized key: "Entrypont"/);
    expect(mistake({ links: { 'usr/bin/sh': 'bash' } })).toThrow(/links\.usr\/bin\/sh: must be an absolute path/);
    expect(mistake({ links: { '/usr/../etc/x': 'y' } })).toThrow(/links\.\/usr\/\.\.\/etc\/x: must be normal/);
    expect(mistake({ description: undefined })).toThrow(/description: /);
    expect(mistake({ busyboxApplets: 'yes' })).toThrow(/busyboxApplets: Invalid input: expected boolean/);
  });

  it('says which recipes exist when asked for an unknown one, and checks a recipe against its file name', () => {
    expect(() => loadRecipe('no-such-recipe')).toThrow(/no recipe named "no-such-recipe"; known recipes: .*busybox/);
    expect(() => loadRecipe('../recipes/busybox')).toThrow(expect.objectContaining({ code: 'not_found' }));
    const dir = fresh('recipes');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'mine.json'), JSON.stringify(valid));
    fs.writeFileSync(path.join(dir, 'broken.json'), '{');
    expect(() => loadRecipe('mine', dir)).toThrow(/mine\.json: name: must be "mine", as the file/);
    expect(() => loadRecipe('broken', dir)).toThrow(/broken\.json is not valid JSON/);
  });
});

describe('staging root', () => {
  it('keeps usrmerge links: /bin/x lands in /usr/bin, and a /bin directory entry keeps the link', () => {
    const root = StagingRoot.create(fresh('root'));
    root.directory('/bin', 0o755);
    root.writeFile('/bin/tool', 'x', 0o755);
    expect(fs.lstatSync(path.join(root.dir, 'bin')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(root.dir, 'usr/bin/tool'), 'utf8')).toBe('x');
  });

  it('resolves absolute and climbing symlinks inside the root, never on the host', () => {
    const root = StagingRoot.create(fresh('root'));
    const outside = fresh('host');
    root.symlink('/usr/lib/ssl/certs', '/etc/ssl/certs'); // as Debian's openssl ships it
    root.symlink('/usr/share/up', '../../../../../../../..' + outside);
    root.writeFile('/usr/lib/ssl/certs/ca.pem', 'ca');
    root.writeFile('/usr/share/up/escaped', 'no');
    expect(fs.readFileSync(path.join(root.dir, 'etc/ssl/certs/ca.pem'), 'utf8')).toBe('ca');
    expect(fs.readFileSync(path.join(root.dir, outside, 'escaped'), 'utf8')).toBe('no');
    expect(fs.existsSync(outside)).toBe(false);
  });

  it('replaces a file or link with a later one, but refuses to replace a directory or loop forever', () => {
    const root = StagingRoot.create(fresh('root'));
    root.writeFile('/etc/a', 'first');
    root.writeFile('/etc/a', 'second', 0o4755);
    expect(fs.readFileSync(path.join(root.dir, 'etc/a'), 'utf8')).toBe('second');
    expect(fs.statSync(path.join(root.dir, 'etc/a')).mode & 0o7777).toBe(0o4755);
    expect(() => root.writeFile('/etc', 'x')).toThrow(/\/etc is a directory/);
    root.symlink('/loop', '/loop/x');
    expect(() => root.writeFile('/loop/y', 'x')).toThrow(expect.objectContaining({ code: 'invalid_image' }));
  });
});

describe('layer', () => {
  /** A small root made in the given order at the current time: content and metadata the same, history not. */
  function smallRoot(order: string[]): StagingRoot {
    const root = StagingRoot.create(fresh('root'));
    for (const name of order) root.writeFile(`/usr/share/${name}`, `content of ${name}\n`);
    root.directory('/var/local', 0o2775, { uid: 0, gid: 50 });
    fs.linkSync(path.join(root.dir, 'usr/share/b'), path.join(root.dir, 'usr/share/a-link'));
    return root;
  }

  it('is the same bytes whatever the order and time files were made in', async () => {
    const first = smallRoot(['a', 'b', 'c']);
    await new Promise((r) => setTimeout(r, 20));
    const second = smallRoot(['c', 'b', 'a']);
    const one = await writeLayer(first, fresh('layer'));
    const two = await writeLayer(second, fresh('layer'));
    expect(two).toEqual(one);
    expect(one.entries).toBe(listTree(first.dir).length);
  });

  it('keeps owners, modes (but not setuid/setgid on files), symlinks and hard links, with a fixed mtime', async () => {
    const root = smallRoot(['a', 'b']);
    root.writeFile('/usr/bin/su-like', 'setuid in the package', 0o4755);
    root.writeFile('/usr/bin/sg-like', 'setgid in the package', 0o2711);
    const file = fresh('layer');
    const layer = await writeLayer(root, file);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvzf', file], { encoding: 'utf8' });
    expect(listing).toMatch(/^lrwxrwxrwx 0\/0 +0 1970-01-01 00:00 bin -> usr\/bin$/m);
    expect(listing).toMatch(/^drwxrwsr-x 0\/50 +0 1970-01-01 00:00 var\/local\/$/m);
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +\d+ 1970-01-01 00:00 usr\/bin\/su-like$/m);
    expect(listing).toMatch(/^-rwx--x--x 0\/0 +\d+ 1970-01-01 00:00 usr\/bin\/sg-like$/m);
    expect(listing).toMatch(/^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00 usr\/share\/a-link$/m);
    expect(listing).toMatch(/^hrw-r--r-- 0\/0 +0 1970-01-01 00:00 usr\/share\/b link to usr\/share\/a-link$/m);
    const blob = fs.readFileSync(file);
    expect(`sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`).toBe(layer.digest);
    expect(blob.subarray(4, 8).readUInt32LE()).toBe(0); // no mtime in the gzip header
  });
});

// ---- real builds: apt, Debian's mirrors, sandboxes ----

const CACHE_DIR = path.join(os.tmpdir(), 'lid-deb-cache');
const BUILD_TIMEOUT = 10 * 60_000;

function blobPath(layout: string, digest: string): string {
  return path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

/** Reads a layout, checking every blob against its digest; returns the manifest and the layer blob's path. */
function readLayout(layout: string) {
  const read = (digest: string) => {
    const bytes = fs.readFileSync(blobPath(layout, digest));
    expect(`sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`).toBe(digest);
    return bytes;
  };
  expect(JSON.parse(fs.readFileSync(path.join(layout, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(read(index.manifests[0].digest).toString());
  const config = JSON.parse(read(manifest.config.digest).toString());
  const layer = blobPath(layout, manifest.layers[0].digest);
  read(manifest.layers[0].digest);
  const tar = execFileSync('gzip', ['-dc', layer], { maxBuffer: 1 << 30 });
  expect(config.rootfs.diff_ids).toEqual([`sha256:${crypto.createHash('sha256').update(tar).digest('hex')}`]);
  return { index, manifest, config, layer };
}

function unpack(layer: string): string {
  const dir = fresh('rootfs');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755); // the job's user must be able to enter the root
  execFileSync('tar', ['-xzf', layer, '-C', dir]);
  return dir;
}

describePrivileged('images built from recipes (apt, network to Debian mirrors)', () => {
  let runtime: SandboxRuntime;

  beforeAll(async () => {
    try {
      execFileSync('apt-cache', ['show', 'busybox-static'], { stdio: 'ignore' });
    } catch {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', timeout: BUILD_TIMEOUT });
    }
    runtime = await SandboxRuntime.start({ threads: 1 });
  }, BUILD_TIMEOUT);
  afterAll(async () => {
    await runtime?.close();
  });

  async function build(name: string) {
    const outDir = fresh(`image-${name}`);
    const result = await buildRecipeImage(loadRecipe(name), { outDir, cacheDir: CACHE_DIR });
    return { outDir, result, ...readLayout(outDir) };
  }

  async function runIn(rootfs: string, argv: string[]) {
    const r = await runtime.run({ rootfs, argv, limits: { timeoutMs: 30_000 } });
    return { ...r, out: Buffer.from(r.stdout).toString(), err: Buffer.from(r.stderr).toString() };
  }

  it('builds busybox twice to the same manifest digest, and its applets run', { timeout: BUILD_TIMEOUT }, async () => {
    const one = await build('busybox');
    const two = await build('busybox');
    expect(two.result.manifestDigest).toBe(one.result.manifestDigest);
    expect(one.index.manifests[0].annotations['org.opencontainers.image.ref.name']).toBe('busybox:latest');
    expect(one.manifest.annotations[PACKAGES_ANNOTATION]).toMatch(/^busybox-static=\S+$/);
    expect(one.config).toMatchObject({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] } });
    const r = await runIn(unpack(one.layer), ['sh', '-c', 'echo $((6*7)); ls /usr/bin/ls; id -un']);
    expect(r.out).toBe('42\n/usr/bin/ls\nnobody\n');
  });

  it('builds python: python3 and its standard library run as uid 65534', { timeout: BUILD_TIMEOUT }, async () => {
    const { result, manifest, layer } = await build('python');
    expect(result.layers).toBe(1);
    expect(result.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['python3', 'libc6']));
    expect(manifest.annotations[PACKAGES_ANNOTATION]).toMatch(/(^| )python3=\S+( |$)/);
    const root = unpack(layer);
    expect((await runIn(root, ['python3', '-c', 'print(6*7)'])).out).toBe('42\n');
    const stdlib = await runIn(root, ['python3', '-c', 'import json, sqlite3, ssl, getpass; print(getpass.getuser())']);
    expect(stdlib.out + stdlib.err).toBe('nobody\n');
  });

  it('builds node from Debian nodejs', { timeout: BUILD_TIMEOUT }, async () => {
    const { result, layer } = await build('node');
    expect(result.packages.find((p) => p.name === 'nodejs')?.version).toMatch(/^18\./);
    const r = await runIn(unpack(layer), ['node', '-e', 'console.log(6*7)']);
    expect(r.out + r.err).toBe('42\n');
  });

  it('builds bash with coreutils', { timeout: BUILD_TIMEOUT }, async () => {
    const { layer } = await build('bash');
    const r = await runIn(unpack(layer), ['bash', '-c', 'echo $((6*7)); ls -d / /usr; sh -c "echo sh is bash"']);
    expect(r.out + r.err).toBe('42\n/\n/usr\nsh is bash\n');
  });

  it('names a package apt does not know', { timeout: BUILD_TIMEOUT }, async () => {
    const failure = await resolvePackages(['lid-no-such-package'], { cacheDir: CACHE_DIR }).catch((e: unknown) => e);
    expect(isLidError(failure) && failure.code).toBe('not_found');
    expect(String(failure)).toMatch(/Debian package "lid-no-such-package" is not in apt's package lists/);
  });
});
