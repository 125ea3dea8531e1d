// Hostile: images built to steer host-side code. An image's `etc -> /etc` with `User: daemon` ran the job as the
// host's uid 1, and `etc/passwd -> /dev/zero` made the worker read forever; `dev -> /tmp` and `proc -> /` made Lid
// mount its /dev and /proc elsewhere, leaving the masks of /proc unapplied. Defences: the image's user is resolved
// inside the sandbox from bounded regular files (lid-init), lower-layer lookups never walk a symlink
// (runtime/rootfs.ts), and /dev and /proc must be plain directories. Each hostile image fails its own job with a
// clear invalid_image error, in bounded time, and the runtime or worker goes on serving.
// The controls show the attacks are real: walking the same layer with the host's resolver does reach host files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import { LidQueueClient } from '../../common/queue-client.js';
import { importImage } from '../../images/import.js';
import { ImageStore } from '../../images/store.js';
import { LidWorker } from '../../worker/worker.js';
import { busyboxLayer, type LayerEntry, writeOciLayout } from '../oci-fixtures.js';
import { describePrivileged } from '../privileged.js';
import { startTestRedis, type TestRedis } from '../redis-server.js';
import { useSandboxes } from '../sandbox-harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-hostile-images-'));

/** A layer directory made of the given symlinks (and plain directories), over busybox. */
function layerDir(name: string, links: Record<string, string>, dirs: string[] = []): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { mode: 0o755 });
  for (const d of dirs) fs.mkdirSync(path.join(dir, d), { recursive: true });
  for (const [at, target] of Object.entries(links)) fs.symlinkSync(target, path.join(dir, at));
  return dir;
}

describePrivileged('hostile images, against the runtime', () => {
  const h = useSandboxes();
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('control: a host-side walk of these layers reaches host files', () => {
    const etc = layerDir('control-etc', { etc: '/etc' });
    const zero = layerDir('control-zero', { 'etc/passwd': '/dev/zero' }, ['etc']);
    expect(fs.readFileSync(path.join(etc, 'etc', 'passwd'), 'utf8')).toMatch(/^daemon:x:1:1:/m); // the host's
    expect(fs.statSync(path.join(zero, 'etc', 'passwd')).isCharacterDevice()).toBe(true); // a read never ends
  });

  const cases: [string, () => string, string, RegExp][] = [
    [
      'etc -> /etc with User daemon',
      () => layerDir('etc', { etc: '/etc' }),
      'daemon',
      /^the image's \/etc\/passwd is a symlink \(or reached through a symlink loop\), so its user "daemon" cannot be looked up$/,
    ],
    [
      'etc/passwd -> /dev/zero with a named User',
      () => layerDir('zero', { 'etc/passwd': '/dev/zero' }, ['etc']),
      'app',
      /^the image's \/etc\/passwd is a symlink/,
    ],
    [
      'dev -> /tmp',
      () => layerDir('dev', { dev: '/tmp' }),
      '',
      /^the image's \/dev is a symlink: Lid mounts the kernel's \/dev there/,
    ],
    ['proc -> /', () => layerDir('proc', { proc: '/' }), '', /^the image's \/proc is a symlink: Lid mounts/],
  ];

  it.each(cases)(
    '%s: fails its own job with invalid_image, and the runtime goes on',
    async (_name, make, user, why) => {
      const layer = make();
      const started = Date.now();
      const run = h.run({ rootfs: [h.rootfs, layer], argv: ['id'], ...(user ? { user } : {}) });
      await expect(run).rejects.toMatchObject({ code: 'invalid_image', message: expect.stringMatching(why) });
      expect(Date.now() - started).toBeLessThan(5000);
      const next = await h.run({ argv: ['echo', 'still serving'] });
      expect(next.out).toBe('still serving\n');
    },
  );

  it('never follows an image symlink to place the job’s files, even several layers down', async () => {
    const lower = layerDir('lower-real', {}, ['data/inner']);
    const upper = layerDir('upper-link', { data: '/etc' });
    await expect(
      h.run({ rootfs: [h.rootfs, lower, upper], argv: ['true'], files: [{ path: '/data/inner/x', content: 'x' }] }),
    ).rejects.toMatchObject({
      code: 'invalid_spec',
      message: 'cannot place a file under /data: the image has a symlink there',
    });
    expect(fs.existsSync('/etc/inner')).toBe(false);
  });
});

describePrivileged('hostile images, against a worker', () => {
  let redis: TestRedis;
  let client: LidQueueClient;
  let worker: LidWorker;
  const dataDir = path.join(tmp, 'worker-data');
  const images: Record<string, { entries: LayerEntry[]; user?: string }> = {
    'hostile-etc:1': { entries: [{ type: 'symlink', name: 'etc', linkname: '/etc' }], user: 'daemon' },
    'hostile-zero:1': {
      entries: [
        { type: 'directory', name: 'etc' },
        { type: 'symlink', name: 'etc/passwd', linkname: '/dev/zero' },
      ],
      user: 'app',
    },
    'hostile-dev:1': { entries: [{ type: 'symlink', name: 'dev', linkname: '/tmp' }] },
    'hostile-proc:1': { entries: [{ type: 'symlink', name: 'proc', linkname: '/' }] },
    'plain:1': { entries: [] },
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    const store = ImageStore.open(dataDir);
    for (const [name, image] of Object.entries(images)) {
      const layout = path.join(tmp, `layout-${name.replace(':', '-')}`);
      await writeOciLayout(layout, {
        layers: [busyboxLayer(), image.entries],
        refName: name,
        ...(image.user ? { config: { User: image.user } } : {}),
      });
      await importImage(store, layout);
    }
    client = new LidQueueClient(redis.url);
    const config = loadConfig({ LID_DATA_DIR: dataDir, LID_WORKER_CONCURRENCY: '2', LID_WORKER_METRICS_PORT: 'off' });
    worker = await LidWorker.start(config, { redisUrl: redis.url, logger: pino({ level: 'silent' }) });
  }, 120_000);
  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await redis?.stop();
  });

  it('ends each hostile job in error invalid_image, once, and serves the next job', { timeout: 60_000 }, async () => {
    for (const name of Object.keys(images).filter((n) => n.startsWith('hostile-'))) {
      const { id } = await client.submit('tenant-a', { image: name, command: ['id'] });
      const record = await client.wait(id, 20_000);
      expect(record, name).toMatchObject({ state: 'error', attempts: 1, error: { code: 'invalid_image' } });
      expect(record.error!.message, name).toMatch(/^the image's /);
    }
    const { id } = await client.submit('tenant-a', { image: 'plain:1', command: ['echo', 'still serving'] });
    expect(await client.wait(id, 20_000)).toMatchObject({
      state: 'completed',
      attempts: 1,
      result: { stdout: 'still serving\n' },
    });
  });
});
