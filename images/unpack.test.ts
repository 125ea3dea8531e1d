// Layer unpacking against real archives built here with tar-stream: what a normal layer keeps (modes, owners, links,
// times), that whiteouts and opaque markers come out in overlayfs's own format (checked with a real overlay mount),
// and that every hostile or broken archive is refused with nothing left behind.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import koffi from 'koffi';
import tar from 'tar-stream';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';
import { unpackLayer } from './unpack.js';

type TarEntry = Partial<tar.Header> & { name: string; body?: string | Buffer };

const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';
const OCI_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const MTIME = new Date('2021-06-01T12:00:00Z');

async function buildTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      pack.entry({ mtime: MTIME, ...header }, body ?? '', done);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

const libc = koffi.load('libc.so.6');
const lgetxattr = libc.func('long lgetxattr(const char *path, const char *name, void *value, size_t size)');

function readXattr(file: string, name: string): string | null {
  const value = Buffer.alloc(64);
  const n = Number(lgetxattr(file, name, value, value.length));
  return n < 0 ? null : value.subarray(0, n).toString();
}

describePrivileged('unpackLayer', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-unpack-'));
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
  let counter = 0;
  const fresh = (label: string) => path.join(scratch, `${label}-${++counter}`);

  function writeBlob(data: Buffer): string {
    const blobPath = fresh('blob');
    fs.writeFileSync(blobPath, data);
    return blobPath;
  }

  async function unpack(entries: TarEntry[], opts: { gzip?: boolean; mediaType?: string } = {}) {
    const tarBytes = await buildTar(entries);
    const blobPath = writeBlob(opts.gzip ? zlib.gzipSync(tarBytes) : tarBytes);
    const dest = fresh('layer');
    const progress: number[] = [];
    const result = await unpackLayer({
      blobPath,
      mediaType: opts.mediaType ?? (opts.gzip ? OCI_GZIP : OCI_TAR),
      dest,
      onProgress: (n) => progress.push(n),
    });
    return { result, dest, tarBytes, blobSize: fs.statSync(blobPath).size, progress };
  }

  /** Unpacks a hostile archive and checks it is refused naming `entry`, leaving nothing behind. */
  async function expectRefused(entries: TarEntry[], entry: string, why?: RegExp) {
    const blobPath = writeBlob(await buildTar(entries));
    const dest = fresh('refused');
    const error = await unpackLayer({ blobPath, mediaType: OCI_TAR, dest }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'LidError', code: 'invalid_image' });
    expect((error as Error).message).toContain(JSON.stringify(entry));
    if (why) expect((error as Error).message).toMatch(why);
    expect(fs.existsSync(dest)).toBe(false);
  }

  const longName = `usr/share/${'deep/'.repeat(30)}file.txt`;
  const bigBody = crypto.randomBytes(3 << 20);
  const normalLayer: TarEntry[] = [
    { name: './', type: 'directory', mode: 0o755 },
    { name: 'usr/', type: 'directory', mode: 0o755 },
    { name: 'usr/bin/', type: 'directory', mode: 0o751, uid: 1000, gid: 1001 },
    { name: 'usr/bin/su-like', mode: 0o4755, uid: 1000, gid: 1000, body: 'setuid\n' },
    { name: 'usr/bin/sg-like', mode: 0o2711, body: 'setgid\n' },
    { name: 'var/local/', type: 'directory', mode: 0o2775, gid: 50 },
    { name: 'usr/bin/python3.11', mode: 0o755, body: bigBody },
    { name: 'usr/bin/python3', type: 'symlink', linkname: '/usr/bin/python3.11' },
    { name: 'usr/bin/py', type: 'symlink', linkname: 'python3.11', uid: 7, gid: 8 },
    { name: 'usr/lib64', type: 'symlink', linkname: '../usr/bin' },
    { name: 'usr/bin/python', type: 'link', linkname: 'usr/bin/python3.11' },
    { name: './etc/hostname', mode: 0o600, body: 'lid\n' },
    { name: longName, body: 'long names come through pax headers\n' },
  ];

  it.each([
    { label: 'uncompressed', gzip: false, mediaType: OCI_TAR },
    { label: 'gzip', gzip: true, mediaType: DOCKER_GZIP },
    { label: 'gzip labelled as plain tar', gzip: true, mediaType: OCI_TAR },
  ])('unpacks a normal layer ($label), keeping modes, owners, links and times', async ({ gzip, mediaType }) => {
    const { result, dest, tarBytes, blobSize, progress } = await unpack(normalLayer, { gzip, mediaType });
    expect(result).toEqual({
      diffId: `sha256:${crypto.createHash('sha256').update(tarBytes).digest('hex')}`,
      bytes: tarBytes.length,
      entries: normalLayer.length,
    });
    expect(progress.at(-1)).toBe(blobSize);

    const at = (p: string) => fs.lstatSync(path.join(dest, p));
    expect(at('').mode & 0o7777).toBe(0o755);
    // Setuid and setgid files lose those bits (a host user must never find a tenant's setuid-root program); a
    // setgid directory keeps its bit, which grants nothing.
    expect(at('usr/bin/su-like')).toMatchObject({ mode: 0o100755, uid: 1000, gid: 1000, mtimeMs: MTIME.getTime() });
    expect(at('usr/bin/sg-like').mode).toBe(0o100711);
    expect(at('var/local')).toMatchObject({ mode: 0o42775, gid: 50 });
    expect(at('usr/bin').mode & 0o7777).toBe(0o751);
    expect(at('usr/bin')).toMatchObject({ uid: 1000, gid: 1001, mtimeMs: MTIME.getTime() });
    expect(at('etc/hostname').mode & 0o7777).toBe(0o600);
    expect(fs.readFileSync(path.join(dest, 'etc/hostname'), 'utf8')).toBe('lid\n');
    expect(fs.readFileSync(path.join(dest, 'usr/bin/python3.11')).equals(bigBody)).toBe(true);
    expect(fs.readFileSync(path.join(dest, longName), 'utf8')).toBe('long names come through pax headers\n');

    expect(fs.readlinkSync(path.join(dest, 'usr/bin/python3'))).toBe('/usr/bin/python3.11');
    expect(fs.readlinkSync(path.join(dest, 'usr/bin/py'))).toBe('python3.11');
    expect(at('usr/bin/py')).toMatchObject({ uid: 7, gid: 8, mtimeMs: MTIME.getTime() });
    expect(fs.readlinkSync(path.join(dest, 'usr/lib64'))).toBe('../usr/bin');
    expect(at('usr/bin/python').ino).toBe(at('usr/bin/python3.11').ino);
  });

  it('writes whiteouts and opaque directories that a real overlay mount honours', async () => {
    const lower = await unpack([
      { name: 'd/a', body: 'lower a' },
      { name: 'd/b', body: 'lower b' },
      { name: 'gone.txt', body: 'deleted above' },
      { name: 'kept.txt', body: 'still here' },
    ]);
    const upper = await unpack(
      [
        { name: 'd/', type: 'directory' },
        { name: 'd/.wh..wh..opq' },
        { name: 'd/c', body: 'upper c' },
        { name: '.wh.gone.txt' },
        { name: 'sub/.wh.never-existed' },
      ],
      { gzip: true },
    );
    const whiteout = fs.lstatSync(path.join(upper.dest, 'gone.txt'));
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
    expect(fs.lstatSync(path.join(upper.dest, 'sub/never-existed')).isCharacterDevice()).toBe(true);
    expect(readXattr(path.join(upper.dest, 'd'), 'trusted.overlay.opaque')).toBe('y');
    expect(fs.readdirSync(upper.dest).filter((n) => n.startsWith('.wh.'))).toEqual([]);

    const merged = fresh('merged');
    fs.mkdirSync(merged);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper.dest}:${lower.dest}`, merged]);
    try {
      expect(fs.readdirSync(path.join(merged, 'd'))).toEqual(['c']);
      expect(fs.existsSync(path.join(merged, 'gone.txt'))).toBe(false);
      expect(fs.readFileSync(path.join(merged, 'kept.txt'), 'utf8')).toBe('still here');
    } finally {
      execFileSync('umount', [merged]);
    }
  });

  it('lets later entries override earlier ones, keeping a re-created whited-out directory opaque', async () => {
    const { dest } = await unpack([
      { name: 'a', body: 'first' },
      { name: 'a', body: 'second' },
      { name: 'd/x', body: 'x' },
      { name: 'd', body: 'now a file' },
      { name: '.wh.w' },
      { name: 'w/', type: 'directory' },
      { name: 'kept', body: 'from this layer' },
      { name: '.wh.kept' },
    ]);
    expect(fs.readFileSync(path.join(dest, 'a'), 'utf8')).toBe('second');
    expect(fs.readFileSync(path.join(dest, 'd'), 'utf8')).toBe('now a file');
    expect(fs.lstatSync(path.join(dest, 'w')).isDirectory()).toBe(true);
    expect(readXattr(path.join(dest, 'w'), 'trusted.overlay.opaque')).toBe('y');
    expect(fs.readFileSync(path.join(dest, 'kept'), 'utf8')).toBe('from this layer');
  });

  it.each<[string, TarEntry[], string, RegExp]>([
    ['an absolute path', [{ name: '/etc/passwd', body: 'x' }], '/etc/passwd', /absolute/],
    ['a ".." path', [{ name: '../escape', body: 'x' }], '../escape', /"\.\."/],
    ['a ".." in the middle', [{ name: 'a/../../escape', body: 'x' }], 'a/../../escape', /"\.\."/],
    [
      'a relative symlink climbing out',
      [{ name: 'a/b', type: 'symlink', linkname: '../../../etc' }],
      'a/b',
      /outside the layer/,
    ],
    ['an absolute hardlink', [{ name: 'x', type: 'link', linkname: '/etc/passwd' }], 'x', /absolute/],
    ['a hardlink climbing out', [{ name: 'x', type: 'link', linkname: '../passwd' }], 'x', /"\.\."/],
    ['a hardlink to nothing earlier', [{ name: 'x', type: 'link', linkname: 'later' }], 'x', /not a file earlier/],
    [
      'a hardlink through a symlink',
      [
        { name: 'l', type: 'symlink', linkname: '/etc' },
        { name: 'x', type: 'link', linkname: 'l/passwd' },
      ],
      'x',
      /through the symlink "l"/,
    ],
    [
      'a hardlink to a whiteout',
      [{ name: '.wh.w' }, { name: 'x', type: 'link', linkname: 'w' }],
      'x',
      /not a file earlier/,
    ],
    [
      'a character device',
      [{ name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 }],
      'dev/mem',
      /device/,
    ],
    ['a block device', [{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 }], 'dev/sda', /device/],
    ['a FIFO', [{ name: 'run/pipe', type: 'fifo' }], 'run/pipe', /FIFO/],
    ['a whiteout of a whiteout', [{ name: 'd/.wh..wh.foo' }], 'd/.wh..wh.foo', /whiteout/],
    ['an empty whiteout', [{ name: 'd/.wh.' }], 'd/.wh.', /whiteout/],
    ['a whiteout name as a directory', [{ name: '.wh.d/x', body: 'x' }], '.wh.d/x', /whiteout name/],
  ])('refuses %s', async (_what, entries, entry, why) => {
    await expectRefused(entries, entry, why);
  });

  it.each<[string, (host: string) => TarEntry[], string]>([
    [
      'a file',
      (host) => [
        { name: 'link', type: 'symlink', linkname: host },
        { name: 'link/passwd', body: 'x' },
      ],
      'link/passwd',
    ],
    [
      'a directory',
      (host) => [
        { name: 'link', type: 'symlink', linkname: host },
        { name: 'link/sub/', type: 'directory' },
      ],
      'link/sub/',
    ],
    ['a whiteout', (host) => [{ name: 'link', type: 'symlink', linkname: host }, { name: 'link/.wh.x' }], 'link/.wh.x'],
    [
      'an opaque marker',
      (host) => [{ name: 'link', type: 'symlink', linkname: host }, { name: 'link/.wh..wh..opq' }],
      'link/.wh..wh..opq',
    ],
    [
      'a file under a symlink that replaced a directory',
      (host) => [
        { name: 'd/', type: 'directory' },
        { name: 'd', type: 'symlink', linkname: host },
        { name: 'd/passwd', body: 'x' },
      ],
      'd/passwd',
    ],
    [
      'a file under a symlink to inside the layer',
      () => [
        { name: 'self', type: 'symlink', linkname: '.' },
        { name: 'self/x', body: 'x' },
      ],
      'self/x',
    ],
  ])(
    'refuses writing %s through a symlink from the same archive, touching nothing outside',
    async (_what, build, entry) => {
      const host = fresh('host');
      fs.mkdirSync(host);
      await expectRefused(build(host), entry, /through the symlink/);
      expect(fs.readdirSync(host)).toEqual([]);
      expect(readXattr(host, 'trusted.overlay.opaque')).toBe(null);
    },
  );

  it('refuses a corrupt or truncated gzip stream and a broken tar, leaving nothing behind', async () => {
    const gzipped = zlib.gzipSync(await buildTar(normalLayer));
    const corrupt = Buffer.from(gzipped);
    for (let i = 1000; i < 1100; i++) corrupt[i] = corrupt[i]! ^ 0xff;
    const plain = await buildTar(normalLayer);
    const cases: [Buffer, RegExp][] = [
      [corrupt, /corrupt gzip/],
      [gzipped.subarray(0, gzipped.length >> 1), /corrupt gzip/],
      [plain.subarray(0, 5000), /not a valid tar/],
      [Buffer.concat([Buffer.alloc(512, 'x'), plain]), /not a valid tar/],
    ];
    for (const [blob, why] of cases) {
      const dest = fresh('broken');
      await expect(unpackLayer({ blobPath: writeBlob(blob), mediaType: OCI_GZIP, dest })).rejects.toMatchObject({
        code: 'invalid_image',
        message: expect.stringMatching(why),
      });
      expect(fs.existsSync(dest)).toBe(false);
    }
  });

  it('refuses zstd and unknown media types, and zstd data under a tar label, before creating dest', async () => {
    const tarBlob = writeBlob(await buildTar([{ name: 'a', body: 'a' }]));
    const zstdBlob = writeBlob(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    const cases: [string, string, RegExp][] = [
      [tarBlob, 'application/vnd.oci.image.layer.v1.tar+zstd', /zstd.*not supported/],
      [tarBlob, 'application/x-tar', /unsupported layer media type/],
      [zstdBlob, OCI_TAR, /zstd-compressed/],
    ];
    for (const [blobPath, mediaType, why] of cases) {
      const dest = fresh('unsupported');
      await expect(unpackLayer({ blobPath, mediaType, dest })).rejects.toMatchObject({
        code: 'invalid_image',
        message: expect.stringMatching(why),
      });
      expect(fs.existsSync(dest)).toBe(false);
    }
  });

  it('never touches a dest that already exists', async () => {
    const dest = fresh('existing');
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, 'mine'), 'keep');
    const blobPath = writeBlob(await buildTar([{ name: 'a', body: 'a' }]));
    await expect(unpackLayer({ blobPath, mediaType: OCI_TAR, dest })).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readdirSync(dest)).toEqual(['mine']);
  });
});
