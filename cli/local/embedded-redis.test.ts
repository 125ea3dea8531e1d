// The embedded Redis against a real redis-server (installed with apt-get in beforeAll when missing): discovery and
// reuse, one server for concurrent starters (in this process and another), stale discovery files, durability of
// acknowledged writes and BullMQ jobs across a SIGKILL (AOF replay), a clear error when it cannot start, and stop.
// Then the lockdown, attacked: clients without the password, Lid's own user trying the commands it is denied, a
// local unprivileged user going for the password file, the data and the socket; the server's own uid; and the
// upgrade of a data directory whose server ran as root without a password.
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EmbeddedRedis, ensureEmbeddedRedis, ensureRedisServer, stopEmbeddedRedis } from './embedded-redis.js';
import { DENIED_COMMANDS } from './redis-credentials.js';
import { CHANNELS } from '../../common/keys.js';
import { connectRedis } from '../../common/redis.js';
import { probe } from './resp-probe.js';
import { describePrivileged } from '../../test/privileged.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-redis-'));
// Open to traversal, as /var/lib is: what keeps other users out must be Lid's own modes, not a private temp dir.
fs.chmodSync(tmp, 0o755);
const dataDirs: string[] = [];
let n = 0;
function fresh(): string {
  const dir = path.join(tmp, `d${++n}`);
  dataDirs.push(dir);
  return dir;
}
const redisDir = (dataDir: string) => path.join(dataDir, 'redis');
const endpointFile = (dataDir: string) => path.join(redisDir(dataDir), 'endpoint.json');
const readEndpoint = (dataDir: string) => JSON.parse(fs.readFileSync(endpointFile(dataDir), 'utf8'));
const portOf = (url: string) => Number(new URL(url).port);
const run = promisify(execFile);
const moduleFile = new URL('./embedded-redis.ts', import.meta.url).pathname;
const repoRoot = new URL('../..', import.meta.url).pathname;

/** Pids of the redis-servers working in `dataDir`'s redis directory (zombies have no cwd and are left out). */
function serversIn(dataDir: string): number[] {
  const dir = fs.realpathSync(redisDir(dataDir));
  return fs.readdirSync('/proc').flatMap((entry) => {
    try {
      const comm = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      return comm === 'redis-server' && fs.readlinkSync(`/proc/${entry}/cwd`) === dir ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') return; // dead, not yet reaped
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`process ${pid} did not exit`);
}

/** Holds a TCP port on 127.0.0.1 until closed, as an unrelated program would. */
async function holdPort(): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  // The tests need the real server; install it as `npm start` would rather than skip.
  await ensureRedisServer({ onNotice: (msg) => console.log(msg) });
}, 600_000);

afterAll(async () => {
  for (const dir of dataDirs) {
    await stopEmbeddedRedis(dir).catch(() => {});
    for (const pid of fs.existsSync(redisDir(dir)) ? serversIn(dir) : []) process.kill(pid, 'SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('starts a server that answers, writes the discovery file, and reuses the server on the next call', async () => {
  const dir = fresh();
  const first = await ensureEmbeddedRedis(dir);
  expect(first.started).toBe(true);
  expect(first.url).toMatch(/^redis:\/\/lid:[0-9a-f]{64}@127\.0\.0\.1:\d+$/);
  expect(readEndpoint(dir)).toMatchObject({
    pid: first.pid,
    port: portOf(first.url),
    socket: path.join(path.resolve(dir), 'redis', 'redis.sock'),
  });
  const redis = connectRedis(first.url, 'test');
  try {
    expect(await redis.ping()).toBe('PONG');
    expect(await redis.client('GETNAME')).toBe('lid:test');
    // infra/redis.conf is in force (CONFIG is closed to Lid's user, so INFO and the generated file tell): AOF on,
    // no eviction (BullMQ) under a maxmemory, loopback only, no RDB snapshots.
    const info = await redis.info();
    expect(info).toMatch(/^aof_enabled:1\r$/m);
    expect(info).toMatch(/^maxmemory_policy:noeviction\r$/m);
    expect(Number(/^maxmemory:(\d+)\r$/m.exec(info)?.[1])).toBeGreaterThan(0);
    const conf = fs.readFileSync(path.join(redisDir(dir), 'redis.conf'), 'utf8');
    expect(conf).toMatch(/^bind 127\.0\.0\.1$/m);
    expect(conf).toMatch(/^appendfsync everysec$/m);
    expect(conf).toMatch(/^save ""$/m);
    expect(conf).toMatch(/^aclfile users\.acl$/m);
  } finally {
    redis.disconnect();
  }
  const second = await ensureEmbeddedRedis(dir);
  expect(second).toEqual({ url: first.url, started: false, pid: first.pid });
  expect(serversIn(dir)).toEqual([first.pid]);
});

it('starts exactly one server when several callers, in this process and others, start at once', async () => {
  const dir = fresh();
  const go = `${dir}.go`;
  // Each child loads the module, says it is ready, then waits for the go file: all callers race for real.
  const script = `
    const fs = await import('node:fs');
    const { ensureEmbeddedRedis } = await import(process.argv[1]);
    fs.writeFileSync(process.argv[3] + '.ready-' + process.pid, '');
    while (!fs.existsSync(process.argv[3])) await new Promise((resolve) => setTimeout(resolve, 1));
    console.log(JSON.stringify(await ensureEmbeddedRedis(process.argv[2])));`;
  const args = ['--import', 'tsx', '--input-type=module', '-e', script, moduleFile, dir, go];
  const children = [1, 2, 3].map(() => run(process.execPath, args, { cwd: repoRoot }));
  const isReady = (f: string) => f.startsWith(`${path.basename(go)}.ready-`);
  for (let i = 0; fs.readdirSync(tmp).filter(isReady).length < 3; i++) {
    if (i > 3000) throw new Error('the child processes did not get ready');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  fs.writeFileSync(go, '');
  const all = await Promise.all([
    ...[1, 2, 3].map(() => ensureEmbeddedRedis(dir)),
    ...children.map(async (child) => JSON.parse((await child).stdout) as EmbeddedRedis),
  ]);
  const starter = all.filter((r) => r.started);
  expect(starter).toHaveLength(1);
  expect(all.map((r) => [r.pid, r.url])).toEqual(all.map(() => [starter[0]!.pid, starter[0]!.url]));
  expect(serversIn(dir)).toEqual([starter[0]!.pid]);
});

it('replaces a stale discovery file, moving off a port that something else now holds', async () => {
  const dir = fresh();
  const deadPid = spawnSync('true').pid;
  const taken = await holdPort();
  try {
    const takenPort = (taken.address() as net.AddressInfo).port;
    fs.mkdirSync(redisDir(dir), { recursive: true });
    const stale = { pid: deadPid, port: takenPort, socket: null, startedAt: new Date(0).toISOString() };
    fs.writeFileSync(endpointFile(dir), JSON.stringify(stale));
    const fresh1 = await ensureEmbeddedRedis(dir);
    expect(fresh1.started).toBe(true);
    expect(portOf(fresh1.url)).not.toBe(takenPort);
    expect(readEndpoint(dir).pid).toBe(fresh1.pid);
    await stopEmbeddedRedis(dir);

    // A live pid that is not our redis-server (here: this test process) is as stale as a dead one.
    fs.writeFileSync(endpointFile(dir), JSON.stringify({ ...stale, pid: process.pid, port: portOf(fresh1.url) }));
    const fresh2 = await ensureEmbeddedRedis(dir);
    expect(fresh2).toMatchObject({ url: fresh1.url, started: true }); // the previous port, free again, is reused
    expect(fresh2.pid).not.toBe(process.pid);
  } finally {
    taken.close();
  }
});

it('replaces a server that runs without a discovery file (its starter died) instead of starting a second one', async () => {
  const dir = fresh();
  const orphan = await ensureEmbeddedRedis(dir);
  const redis = connectRedis(orphan.url, 'test');
  await redis.set('kept', 'yes');
  redis.disconnect();
  fs.rmSync(endpointFile(dir));
  const next = await ensureEmbeddedRedis(dir);
  expect(next.started).toBe(true);
  expect(next.pid).not.toBe(orphan.pid);
  expect(serversIn(dir)).toEqual([next.pid]);
  const check = connectRedis(next.url, 'test');
  expect(await check.get('kept')).toBe('yes'); // SIGTERM let it finish its AOF
  check.disconnect();
});

it('keeps acknowledged writes and queued BullMQ jobs when redis-server is SIGKILLed (AOF replay)', async () => {
  const dir = fresh();
  const first = await ensureEmbeddedRedis(dir);
  const redis = connectRedis(first.url, 'test');
  redis.on('error', () => {}); // connection refused while the server is down: expected, ioredis retries
  const queue = new Queue('durability', { connection: redis });
  try {
    await redis.set('plain', 'value');
    await redis.rpush('list', 'a', 'b');
    const job = await queue.add('work', { n: 42 });
    // Redis appends each write to the AOF before it replies, so a killed process loses nothing already in the page
    // cache; the everysec fsync makes it durable against a machine crash too, at most ~1 s later. Waiting past that
    // second makes this test check the documented guarantee, not just the page cache.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    process.kill(first.pid, 'SIGKILL');
    await waitGone(first.pid);

    const again = await ensureEmbeddedRedis(dir);
    expect(again.started).toBe(true);
    expect(again.pid).not.toBe(first.pid);
    expect(again.url).toBe(first.url); // same port: the connection above reconnects by itself
    expect(await redis.get('plain')).toBe('value');
    expect(await redis.lrange('list', 0, -1)).toEqual(['a', 'b']);
    const replayed = await queue.getJob(job.id!);
    expect(replayed?.data).toEqual({ n: 42 });
    expect(await queue.getJobState(job.id!)).toBe('waiting');
    expect(await queue.getWaitingCount()).toBe(1);
  } finally {
    await queue.close();
    redis.disconnect();
  }
});

it('says why when redis-server cannot start, quoting its log', async () => {
  const dir = fresh();
  // A manifest Redis cannot parse makes it refuse to start rather than run without its data.
  fs.mkdirSync(path.join(redisDir(dir), 'appendonlydir'), { recursive: true });
  fs.writeFileSync(path.join(redisDir(dir), 'appendonlydir', 'appendonly.aof.manifest'), 'not a manifest\n');
  const error = await ensureEmbeddedRedis(dir).catch((e: unknown) => e);
  expect(error).toMatchObject({ name: 'LidError', code: 'setup_failed' });
  expect((error as Error).message).toMatch(
    /redis-server \(pid \d+\) exited before it was ready; .*redis\.log ends with:\n.*manifest/is,
  );
  expect(fs.existsSync(endpointFile(dir))).toBe(false);
});

it('stops the server cleanly, removes the discovery file, and keeps the data for the next start', async () => {
  const dir = fresh();
  const first = await ensureEmbeddedRedis(dir);
  const redis = connectRedis(first.url, 'test');
  await redis.set('after-stop', 'still here');
  redis.disconnect();

  expect(await stopEmbeddedRedis(dir)).toBe(true);
  await waitGone(first.pid);
  expect(serversIn(dir)).toEqual([]);
  expect(fs.existsSync(endpointFile(dir))).toBe(false);
  await expect(
    new Promise<void>((resolve, reject) => net.connect(portOf(first.url), '127.0.0.1', resolve).once('error', reject)),
  ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  expect(await stopEmbeddedRedis(dir)).toBe(false); // nothing left to stop

  const second = await ensureEmbeddedRedis(dir);
  expect(second.started).toBe(true);
  const check = connectRedis(second.url, 'test');
  expect(await check.get('after-stop')).toBe('still here');
  check.disconnect();
});

// --- The lockdown ----------------------------------------------------------------------------------------------------

const passwordOf = (dataDir: string) => fs.readFileSync(path.join(dataDir, 'secrets', 'redis-password'), 'utf8').trim();
const auth = (dataDir: string) => ({ user: 'lid', password: passwordOf(dataDir) });
/** A field of /proc/PID/status, e.g. Uid: "103 103 103 103". */
const procStatus = (pid: number, field: string) =>
  new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];

it('refuses clients without the password, and admits the same client with it', async () => {
  const dir = fresh();
  const { url } = await ensureEmbeddedRedis(dir);
  const port = portOf(url);
  expect(await probe(port, ['PING'], null)).toMatch(/^-NOAUTH/);
  expect(await probe(port, ['GET', 'anything'], null)).toMatch(/^-NOAUTH/);
  expect(await probe(port, ['PING'], { user: 'default', password: '' })).toMatch(/^-WRONGPASS/);
  expect(await probe(port, ['PING'], { user: 'lid', password: 'guess' })).toMatch(/^-WRONGPASS/);
  expect(await probe(port, ['PING'], auth(dir))).toBe('+PONG'); // control: the same probe with the password
  // A client library over TCP, and one on the unix socket, must authenticate as well.
  for (const target of [{ port }, { path: readEndpoint(dir).socket as string }]) {
    const client = new Redis({ ...target, maxRetriesPerRequest: 0, enableReadyCheck: false });
    client.on('error', () => {});
    try {
      await expect(client.ping()).rejects.toThrow(/NOAUTH/);
      await client.auth('lid', passwordOf(dir));
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  }
  // The password is nowhere other users can read it: not in the server's command line.
  const pid = readEndpoint(dir).pid as number;
  expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(passwordOf(dir));
  expect(fs.readFileSync(path.join(redisDir(dir), 'users.acl'), 'utf8')).not.toContain(passwordOf(dir));
});

it("denies Lid's own user the commands that would reconfigure, stop or copy the server", async () => {
  const dir = fresh();
  const { url } = await ensureEmbeddedRedis(dir);
  const port = portOf(url);
  const attempts: [string, string[]][] = [
    ['config', ['CONFIG', 'GET', 'maxmemory']],
    ['config', ['CONFIG', 'SET', 'dir', '/etc']],
    ['module', ['MODULE', 'LIST']],
    ['shutdown', ['SHUTDOWN', 'NOSAVE']],
    ['acl', ['ACL', 'SETUSER', 'lid', 'nopass', '+@all']],
    ['acl', ['ACL', 'LIST']],
    ['replicaof', ['REPLICAOF', '127.0.0.1', '1']],
    ['slaveof', ['SLAVEOF', '127.0.0.1', '1']],
    ['sync', ['SYNC']],
    ['psync', ['PSYNC', '?', '-1']],
    ['failover', ['FAILOVER']],
    ['migrate', ['MIGRATE', '127.0.0.1', '1', 'k', '0', '1000']],
  ];
  expect(new Set(attempts.map(([name]) => name))).toEqual(new Set(DENIED_COMMANDS.filter((c) => c !== 'debug')));
  for (const [, args] of attempts) {
    expect(await probe(port, args, auth(dir)), args.join(' ')).toMatch(/^-NOPERM/);
  }
  // DEBUG is off for every connection (enable-debug-command no), before the ACL even looks at it.
  expect(await probe(port, ['DEBUG', 'SLEEP', '0'], auth(dir))).toMatch(/^-(NOPERM|ERR DEBUG command not allowed)/);
  // Controls: what Lid and BullMQ do need still works, and the server survived the SHUTDOWN attempt.
  expect(await probe(port, ['ACL', 'WHOAMI'], auth(dir))).toBe('lid');
  expect(await probe(port, ['CLIENT', 'SETNAME', 'x'], auth(dir))).toBe('+OK');
  expect(await probe(port, ['INFO', 'server'], auth(dir))).toMatch(/redis_version:/);
  expect(await probe(port, ['EVAL', "return redis.call('SET', KEYS[1], 'v')", '1', 'k'], auth(dir))).toBe('+OK');
  expect(await probe(port, ['PUBLISH', CHANNELS.final, 'x'], auth(dir))).toBe(':0');
  expect(await probe(port, ['PING'], auth(dir))).toBe('+PONG');
});

describePrivileged('the embedded Redis as a service user', () => {
  it('runs as the unprivileged redis user, in a directory only that user can enter', async () => {
    const dir = fresh();
    const { pid } = await ensureEmbeddedRedis(dir);
    const redisUid = Number(spawnSync('id', ['-u', 'redis'], { encoding: 'utf8' }).stdout.trim());
    expect(redisUid).toBeGreaterThan(0);
    expect(procStatus(pid, 'Uid')!.split(/\s+/).map(Number)).toEqual([redisUid, redisUid, redisUid, redisUid]);
    expect(procStatus(pid, 'Groups')).not.toMatch(/\b0\b/);
    const st = (p: string) => fs.lstatSync(p);
    expect(st(dir).mode & 0o7777).toBe(0o711);
    expect(st(dir).uid).toBe(0);
    expect({ mode: st(redisDir(dir)).mode & 0o7777, uid: st(redisDir(dir)).uid }).toEqual({
      mode: 0o700,
      uid: redisUid,
    });
    const secrets = path.join(dir, 'secrets');
    expect({ mode: st(secrets).mode & 0o7777, uid: st(secrets).uid }).toEqual({ mode: 0o700, uid: 0 });
    const password = path.join(secrets, 'redis-password');
    expect({ mode: st(password).mode & 0o7777, uid: st(password).uid }).toEqual({ mode: 0o600, uid: 0 });
    // The AOF the server writes is its own.
    expect(st(path.join(redisDir(dir), 'appendonlydir')).uid).toBe(redisUid);
  });

  it('keeps a local unprivileged user from the password, the data and the server; root (control) gets in', async () => {
    const dir = fresh();
    const { url } = await ensureEmbeddedRedis(dir);
    // What a local user would try: read the password, list the AOF, talk to the server on its port (with nothing,
    // or with whatever it found in the password file) and on its unix socket.
    const script = String.raw`
      const fs = require('node:fs'), net = require('node:net');
      const [, passwordFile, redisDir, port, socket] = process.argv;
      const out = {};
      let password = 'none';
      try { password = fs.readFileSync(passwordFile, 'utf8').trim(); out.file = 'read'; } catch (e) { out.file = e.code; }
      try { fs.readdirSync(redisDir); out.dir = 'listed'; } catch (e) { out.dir = e.code; }
      // Resolves the first n reply lines, joined by ' | ', or the connection error's code.
      const ask = (target, cmds, n) => new Promise((resolve) => {
        const c = net.connect(target);
        let got = '';
        const lines = () => got.split('\r\n').slice(0, -1);
        c.on('connect', () => c.write(cmds));
        const timer = setTimeout(() => { c.destroy(); resolve(got || 'timeout'); }, 2000);
        const done = (v) => { clearTimeout(timer); c.destroy(); resolve(v); };
        c.on('data', (d) => { got += d; if (lines().length >= n) done(lines().slice(0, n).join(' | ')); });
        c.on('error', (e) => done(e.code));
      });
      const ping = '*1\r\n$4\r\nPING\r\n';
      const auth = '*3\r\n$4\r\nAUTH\r\n$3\r\nlid\r\n$' + Buffer.byteLength(password) + '\r\n' + password + '\r\n';
      (async () => {
        out.plain = await ask({ port: Number(port), host: '127.0.0.1' }, ping, 1);
        out.auth = await ask({ port: Number(port), host: '127.0.0.1' }, auth + ping, 2);
        out.socket = await ask({ path: socket }, auth + ping, 2);
        console.log(JSON.stringify(out));
      })();`;
    const args = [
      '-e',
      script,
      path.join(dir, 'secrets', 'redis-password'),
      redisDir(dir),
      String(portOf(url)),
      path.join(redisDir(dir), 'redis.sock'),
    ];
    const attempt = async (uid?: number) =>
      JSON.parse((await run(process.execPath, args, { cwd: '/', ...(uid ? { uid, gid: uid } : {}) })).stdout);
    expect(await attempt(65534)).toEqual({
      file: 'EACCES',
      dir: 'EACCES',
      plain: expect.stringMatching(/^-NOAUTH/),
      auth: expect.stringMatching(/^-WRONGPASS .* \| -NOAUTH/),
      socket: 'EACCES',
    });
    expect(await attempt()).toEqual({
      file: 'read',
      dir: 'listed',
      plain: expect.stringMatching(/^-NOAUTH/),
      auth: '+OK | +PONG',
      socket: '+OK | +PONG',
    });
  });

  it('works where the directories above LID_DATA_DIR are closed to the redis user (a checkout under /root)', async () => {
    const closed = fs.mkdtempSync(path.join(tmp, 'closed-'));
    fs.chmodSync(closed, 0o700);
    const dir = path.join(closed, 'var');
    dataDirs.push(dir);
    const { url } = await ensureEmbeddedRedis(dir);
    const redis = connectRedis(url, 'test');
    try {
      await redis.set('k', 'v');
      expect(await redis.get('k')).toBe('v');
    } finally {
      redis.disconnect();
    }
  });

  it('takes over a data directory from before the lockdown: root-owned AOF, a server running without a password', async () => {
    const dir = fresh();
    // The old layout: redis/ owned by root, a passwordless redis-server running as root in it, with a queued job.
    fs.mkdirSync(redisDir(dir), { recursive: true, mode: 0o700 });
    const confPath = new URL('../../infra/redis.conf', import.meta.url).pathname;
    const holder = await holdPort();
    const { port } = holder.address() as net.AddressInfo;
    await new Promise((resolve) => holder.close(resolve));
    const old = spawn(
      'redis-server',
      [confPath, '--dir', redisDir(dir), '--port', String(port), '--maxmemory-policy', 'noeviction'],
      {
        cwd: redisDir(dir),
        detached: true,
        stdio: 'ignore',
      },
    );
    old.unref();
    const oldUrl = `redis://127.0.0.1:${port}`;
    const before = connectRedis(oldUrl, 'test');
    before.on('error', () => {}); // refused until the old server listens
    for (let i = 0; i < 100 && (await before.ping().catch(() => null)) !== 'PONG'; i++)
      await new Promise((r) => setTimeout(r, 20));
    const queue = new Queue('upgrade', { connection: before });
    const job = await queue.add('work', { n: 7 });
    await queue.close();
    before.disconnect();
    fs.writeFileSync(
      endpointFile(dir),
      JSON.stringify({ pid: old.pid, port, socket: null, startedAt: new Date().toISOString() }),
    );

    const now = await ensureEmbeddedRedis(dir);
    expect(now.started).toBe(true);
    await waitGone(old.pid!);
    expect(serversIn(dir)).toEqual([now.pid]);
    expect(procStatus(now.pid, 'Uid')).not.toMatch(/^0\s/);
    const redis = connectRedis(now.url, 'test');
    const again = new Queue('upgrade', { connection: redis });
    try {
      expect((await again.getJob(job.id!))?.data).toEqual({ n: 7 });
    } finally {
      await again.close();
      redis.disconnect();
    }
    for (const f of fs.readdirSync(path.join(redisDir(dir), 'appendonlydir'))) {
      expect(fs.statSync(path.join(redisDir(dir), 'appendonlydir', f)).uid, f).not.toBe(0);
    }
  });
});
