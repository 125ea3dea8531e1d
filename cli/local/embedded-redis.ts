// The embedded Redis: a private redis-server that Lid runs for itself when REDIS_URL is unset, so that one machine
// needs no separate setup. It keeps its AOF under <LID_DATA_DIR>/redis and outlives the `lid` command that started
// it (its own session, stdio to redis.log), so every `lid` command run with the same LID_DATA_DIR reaches the same
// server: they find it through the discovery file <LID_DATA_DIR>/redis/endpoint.json and its password in
// <LID_DATA_DIR>/secrets/redis-password. `lid up` owns its lifecycle and stops it with stopEmbeddedRedis.
// Settings: infra/redis.conf, plus what is generated here (the ACL file, maxmemory).
//
// It is closed to other local users: it admits only Lid's ACL user with a generated password
// (cli/local/redis-credentials.ts), and it runs as the unprivileged `redis` user in a directory only that user can read
// (cli/local/redis-service-user.ts). The server is started with its working directory already set (as root, before
// the switch to that user), and every path it uses is relative to it, so it needs no access to the directories
// above LID_DATA_DIR (a checkout under /root works).
//
// Two servers appending to one AOF would corrupt it, so "is ours running?" is decided from /proc, not from a PING
// alone: ours is a redis-server whose working directory is our redis directory. One that is alive but slow to
// answer (replaying a large AOF) is waited for, never replaced; one that runs without a discovery file (its starter
// was interrupted) or that refuses our password (started by an older Lid, without one) is stopped before a new one
// starts; and a server counts as ready only when the one answering on the port reports our pid (another program may
// hold a port we were about to use).
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withDirLock } from '../../common/dir-lock.js';
import { LidError } from '../../common/errors.js';
import { aclFileContent, ensurePassword, readPassword, REDIS_USER, urlWithCredentials } from './redis-credentials.js';
import {
  openLogSafely,
  prepareRedisDirs,
  readFileSafely,
  redisServiceUser,
  type ServiceUser,
  writeFileSafely,
} from './redis-service-user.js';
import { probe } from './resp-probe.js';

export interface EmbeddedRedis {
  /** redis://lid:<password>@127.0.0.1:<port>: a secret, never to be logged as it is (see maskRedisUrl). */
  url: string;
  /** True when this call started the server, false when it found one running. */
  started: boolean;
  pid: number;
}

export interface EnsureEmbeddedRedisOptions {
  /** Told what is happening when it takes a while (installing redis-server). */
  onNotice?: (msg: string) => void;
  /** Install Debian's redis-server with apt-get when it is missing (default true). */
  install?: boolean;
  /** How long a starting server may take to be ready, AOF replay included (default 60 s). */
  startTimeoutMs?: number;
  /** The server's maxmemory in bytes, or 'auto' (the default): a quarter of this machine's memory. */
  maxmemory?: number | 'auto';
}

/** The discovery file's content. */
interface Endpoint {
  pid: number;
  port: number;
  socket: string | null;
  startedAt: string;
}

type Probe = 'ready' | 'loading' | 'refused' | 'down';

const MANUAL_INSTALL = 'apt-get install -y --no-install-recommends redis-server';
const SUN_PATH_MAX = 107; // a unix socket path is at most 108 bytes, NUL included
// Names inside the redis directory, as the server (whose working directory it is) sees them.
const ACL = 'users.acl';
const SOCKET = 'redis.sock';

function layout(dataDir: string) {
  const dir = path.resolve(dataDir, 'redis');
  const secrets = path.resolve(dataDir, 'secrets');
  const socket = path.join(dir, SOCKET);
  return {
    dataDir: path.resolve(dataDir),
    dir,
    secrets,
    password: path.join(secrets, 'redis-password'),
    endpoint: path.join(dir, 'endpoint.json'),
    socket: Buffer.byteLength(socket) <= SUN_PATH_MAX ? socket : null,
    log: path.join(dir, 'redis.log'),
    // Root's, outside the directory the server's user owns.
    lock: path.join(secrets, 'redis-start.lock'),
  };
}
type Layout = ReturnType<typeof layout>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** infra/redis.conf of this Lid checkout, also when running the compiled code in dist/. */
function confPath(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'infra', 'redis.conf');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new LidError('internal', 'infra/redis.conf is missing from the Lid package');
  }
}

/** maxmemory in bytes: the option, or a quarter of the machine's memory (whole MiB). */
export function embeddedMaxmemory(option: number | 'auto' = 'auto'): number {
  return option === 'auto' ? Math.floor(os.totalmem() / 4 / 2 ** 20) * 2 ** 20 : option;
}

/**
 * The server's config: infra/redis.conf (copied, since the server's user may not be able to read Lid's checkout)
 * followed by what depends on this machine. The password is not in it: only its hash, in the ACL file.
 */
function serverConfig(maxmemory: number): string {
  const generated = [
    '# --- Generated by cli/local/embedded-redis.ts at each start ------------------------------------------------',
    `aclfile ${ACL}`,
    `maxmemory ${maxmemory}`,
  ];
  return `${fs.readFileSync(confPath(), 'utf8').trimEnd()}\n\n${generated.join('\n')}\n`;
}

/** Asks the server on ep.port for INFO as Lid's user: is it process ep.pid, has it loaded its data, does it admit us? */
async function probeServer(ep: Endpoint, password: string, timeoutMs = 1000): Promise<Probe> {
  const info = await probe(ep.port, ['INFO'], { user: REDIS_USER, password }, timeoutMs).catch(() => null);
  if (!info) return 'down';
  if (/^-(WRONGPASS|NOAUTH|NOPERM|ERR AUTH)/.test(info)) return 'refused';
  if (!new RegExp(`^process_id:${ep.pid}\\r?$`, 'm').test(info)) return 'down'; // another program holds the port
  return /^loading:0\r?$/m.test(info) ? 'ready' : 'loading';
}

// --- Processes -------------------------------------------------------------------------------------------------------

/** True when `pid` is a live (not zombie) redis-server working in `dir`: our embedded server. */
function isServerOf(pid: number, dir: string): boolean {
  try {
    if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'redis-server') return false;
    return fs.readlinkSync(`/proc/${pid}/cwd`) === fs.realpathSync(dir); // a zombie has no cwd: this throws
  } catch {
    return false;
  }
}

/** The pid of a redis-server working in `dir`, if any. */
function findServerProcess(dir: string): number | null {
  for (const entry of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && isServerOf(Number(entry), dir)) return Number(entry);
  }
  return null;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    /* exited meanwhile */
  }
}

async function waitForExit(pid: number, dir: string, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(20)) {
    if (!isServerOf(pid, dir)) return true;
  }
  return false;
}

/** The last lines the server logged since byte `from` of its log (read without following a link, at most 64 KiB). */
function logTail(file: string, from: number, lines = 15): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return '(no log)';
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return '(no log)';
    const start = Math.max(from, st.size - 64 * 1024);
    const buf = Buffer.alloc(Math.max(0, st.size - start));
    fs.readSync(fd, buf, 0, buf.length, start);
    const text = buf.toString().trimEnd();
    return text.split('\n').slice(-lines).join('\n') || '(nothing logged)';
  } finally {
    fs.closeSync(fd);
  }
}

// --- Installing redis-server -----------------------------------------------------------------------------------------

function run(file: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 << 20, timeout: 15 * 60_000 }, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}${error && !stderr ? error.message : ''}` });
    });
  });
}

/** Makes sure redis-server can be run, installing Debian's package with apt-get when allowed. */
export async function ensureRedisServer(
  opts: Pick<EnsureEmbeddedRedisOptions, 'onNotice' | 'install'> = {},
): Promise<void> {
  if ((await run('redis-server', ['--version'])).ok) return;
  if (opts.install === false) {
    throw new LidError('unsupported', `redis-server is not installed: run \`${MANUAL_INSTALL}\`, or set REDIS_URL`);
  }
  opts.onNotice?.("redis-server not found: installing Debian's redis-server with apt-get (once)");
  // Waits for another apt/dpkg run instead of failing on its lock. Where an init system runs, the package's scripts
  // also start Debian's own redis-server on port 6379: harmless, Lid never uses it.
  const install = ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'redis-server'];
  let result = await run('apt-get', install);
  if (!result.ok) {
    // Most often the package lists are missing (fresh container) or stale (404s): refresh them once and retry.
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update']);
    result = await run('apt-get', install);
  }
  if (!result.ok || !(await run('redis-server', ['--version'])).ok) {
    const tail = result.output.trimEnd().split('\n').slice(-10).join('\n');
    throw new LidError(
      'unsupported',
      `could not install redis-server with apt-get; install it yourself (\`${MANUAL_INSTALL}\`, as root) or set ` +
        `REDIS_URL to a Redis you run. apt-get said:\n${tail}`,
    );
  }
}

// --- Discovery -----------------------------------------------------------------------------------------------------

function readEndpoint(file: string): Endpoint | null {
  try {
    const ep = JSON.parse(readFileSafely(file) ?? '') as Partial<Endpoint>;
    if (Number.isInteger(ep.pid) && Number.isInteger(ep.port)) return ep as Endpoint;
  } catch {
    /* missing or half-written by a crashed writer: as good as none */
  }
  return null;
}

/** The endpoint of a server that the discovery file names, when it is ours and admits us. No lock needed. */
async function discovered(paths: Layout, password: string | null): Promise<Endpoint | null> {
  const ep = readEndpoint(paths.endpoint);
  return ep && password && isServerOf(ep.pid, paths.dir) && (await probeServer(ep, password)) === 'ready' ? ep : null;
}

/** Under the start lock: the server running for this directory, if any, once it answers. */
async function running(paths: Layout, password: string, timeoutMs: number): Promise<Endpoint | null> {
  const ep = readEndpoint(paths.endpoint);
  if (ep && isServerOf(ep.pid, paths.dir)) {
    try {
      await waitUntilReady(ep, paths, password, timeoutMs, 0);
      return ep;
    } catch (e) {
      if (!(e instanceof RefusedError)) throw e;
      // Started by an earlier Lid without a password (or with a lost one): replace it, over the same AOF.
      await shutDown(ep.pid, paths, timeoutMs);
      return null;
    }
  }
  // A server without a discovery file: its starter died before writing one, so no client knows it. Stop it rather
  // than guess its port; the caller then starts a fresh one over the same AOF.
  const orphan = findServerProcess(paths.dir);
  if (orphan !== null) await shutDown(orphan, paths, timeoutMs);
  return null;
}

/** A failure of the server, quoting what it logged since byte `logFrom` of its log. */
function serverFailure(pid: number, what: string, paths: Layout, logFrom = 0): LidError {
  const message = `redis-server (pid ${pid}) ${what}; ${paths.log} ends with:\n${logTail(paths.log, logFrom)}`;
  return new LidError('setup_failed', message, { pid, log: paths.log });
}

/** The server answers but does not take our password. */
class RefusedError extends Error {
  override readonly name = 'RefusedError';
}

async function waitUntilReady(
  ep: Endpoint,
  paths: Layout,
  password: string,
  timeoutMs: number,
  logFrom: number,
): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(25)) {
    // Liveness first: a dead server's port may be held by another program that accepts and never answers.
    if (!isServerOf(ep.pid, paths.dir)) throw serverFailure(ep.pid, 'exited before it was ready', paths, logFrom);
    const state = await probeServer(ep, password, 250);
    if (state === 'ready') return;
    if (state === 'refused') throw new RefusedError(`redis-server (pid ${ep.pid}) refuses Lid's password`);
    if (Date.now() > deadline) {
      const what = `was not ready on 127.0.0.1:${ep.port} within ${timeoutMs / 1000} s`;
      throw serverFailure(ep.pid, what, paths, logFrom);
    }
  }
}

/**
 * Shuts the server down cleanly and waits for it to exit: SIGTERM, on which Redis fsyncs the AOF and exits (Lid's
 * user may not send SHUTDOWN).
 */
async function shutDown(pid: number, paths: Layout, timeoutMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (!(await waitForExit(pid, paths.dir, timeoutMs))) {
    throw serverFailure(pid, `still runs ${timeoutMs / 1000} s after being asked to shut down`, paths);
  }
}

// --- Starting and stopping -----------------------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startServer(
  paths: Layout,
  config: string,
  user: ServiceUser | null,
  password: string,
  port: number,
  timeoutMs: number,
): Promise<Endpoint> {
  const logFrom = fs.existsSync(paths.log) ? fs.lstatSync(paths.log).size : 0;
  // The config comes on stdin ("-"): a config file's path Redis makes absolute and opens by that path, which the
  // service user may not be allowed to walk. Names in it are relative (see the header).
  const args = ['-', '--port', String(port), '--daemonize', 'no'];
  if (paths.socket) args.push('--unixsocket', SOCKET);
  const logFd = openLogSafely(paths.log);
  let pid: number | undefined;
  try {
    // detached: its own session, so neither the end of this command nor a Ctrl-C in its terminal reaches it. The
    // working directory is entered before the switch to the service user (libuv: chdir, setgroups, setgid, setuid).
    // Its environment is minimal: Lid's own (tokens, keys) is none of the server's business.
    const child = spawn('redis-server', args, {
      detached: true,
      cwd: paths.dir,
      stdio: ['pipe', logFd, logFd],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    child.once('error', () => {}); // a failed spawn shows as a missing process below
    child.stdin!.on('error', () => {}); // it exited before reading: its log says why
    child.stdin!.end(config);
    child.unref();
    pid = child.pid;
  } finally {
    fs.closeSync(logFd);
  }
  if (pid === undefined) throw new LidError('setup_failed', `could not run redis-server ${args.join(' ')}`);
  const ep = { pid, port, socket: paths.socket, startedAt: new Date().toISOString() };
  try {
    await waitUntilReady(ep, paths, password, timeoutMs, logFrom);
  } catch (e) {
    if (isServerOf(pid, paths.dir)) signal(pid, 'SIGKILL'); // hung: nothing it wrote is acknowledged yet
    throw e instanceof RefusedError ? serverFailure(pid, e.message, paths, logFrom) : e;
  }
  return ep;
}

/**
 * Returns the embedded Redis for `dataDir`, starting it when none is running. Safe to call from many processes at
 * once: one starts the server, the others wait for it.
 */
export async function ensureEmbeddedRedis(
  dataDir: string,
  opts: EnsureEmbeddedRedisOptions = {},
): Promise<EmbeddedRedis> {
  const paths = layout(dataDir);
  const known = readPassword(paths.password);
  const found = await discovered(paths, known);
  if (found && known) return { url: urlWithCredentials(found.port, known), started: false, pid: found.pid };
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  await ensureRedisServer(opts); // the package creates the `redis` user
  const user = await redisServiceUser();
  prepareRedisDirs(paths.dataDir, { redis: paths.dir, secrets: paths.secrets }, user);
  return withDirLock(paths.lock, async () => {
    const password = ensurePassword(paths.password);
    const other = await running(paths, password, timeoutMs); // started by whoever held the lock before us
    if (other) return { url: urlWithCredentials(other.port, password), started: false, pid: other.pid };
    // Made at every start, so that a new Lid's settings and a changed password take effect.
    const config = serverConfig(embeddedMaxmemory(opts.maxmemory));
    // For the operator's eyes only: the settings the server was started with (it reads them from stdin).
    writeFileSafely(path.join(paths.dir, 'redis.conf'), config);
    writeFileSafely(path.join(paths.dir, ACL), aclFileContent(password), { owner: user });
    // The previous server's port when there was one, so that clients still connected to a crashed server reconnect to
    // the new one; if something else holds it now, Redis fails to bind and we move on to a fresh port.
    let port = readEndpoint(paths.endpoint)?.port ?? (await freePort());
    for (let attempt = 1; ; attempt++) {
      try {
        const ep = await startServer(paths, config, user, password, port, timeoutMs);
        // Readers see the old file or the new one, never a partial write; it holds no secret.
        writeFileSafely(paths.endpoint, `${JSON.stringify(ep, null, 2)}\n`, { mode: 0o644 });
        return { url: urlWithCredentials(ep.port, password), started: true, pid: ep.pid };
      } catch (e) {
        // Another program holds the port (the previous one's, or a fresh one taken since freePort let go of it).
        if (attempt === 3 || !(e instanceof LidError) || !/already in use/i.test(e.message)) throw e;
        port = await freePort();
      }
    }
  });
}

/**
 * Stops the embedded Redis of `dataDir` cleanly (SIGTERM: the AOF is flushed and fsynced) and removes its discovery
 * file. Resolves false when none was running.
 */
export async function stopEmbeddedRedis(dataDir: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
  const paths = layout(dataDir);
  if (!fs.existsSync(paths.dir)) return false;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  fs.mkdirSync(paths.secrets, { recursive: true, mode: 0o700 }); // the lock's home: a data dir from an older Lid lacks it
  return withDirLock(paths.lock, async () => {
    const ep = readEndpoint(paths.endpoint);
    const known = ep && isServerOf(ep.pid, paths.dir) ? ep : null;
    const pid = known?.pid ?? findServerProcess(paths.dir); // a server without a discovery file is stopped too
    if (pid !== null) await shutDown(pid, paths, timeoutMs);
    fs.rmSync(paths.endpoint, { force: true });
    return pid !== null;
  });
}
