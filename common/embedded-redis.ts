// The embedded Redis: a private redis-server that Lid runs for itself when REDIS_URL is unset, so that one machine
// needs no separate setup. It keeps its AOF under <LID_DATA_DIR>/redis and outlives the `lid` command that started
// it (its own session, stdio to redis.log), so every `lid` command run with the same LID_DATA_DIR reaches the same
// server: they find it through the discovery file <LID_DATA_DIR>/redis/endpoint.json. `lid up` owns its lifecycle
// and stops it with stopEmbeddedRedis. Settings: infra/redis.conf.
//
// Two servers appending to one AOF would corrupt it, so "is ours running?" is decided from /proc, not from a PING
// alone: ours is a redis-server whose working directory is our redis directory (Redis chdirs to its --dir). One that
// is alive but slow to answer (replaying a large AOF) is waited for, never replaced; one that runs without a
// discovery file (its starter was interrupted) is stopped before a new one starts; and a server counts as ready
// only when the one answering on the port reports our pid (another program may hold a port we were about to use).
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withDirLock } from './dir-lock.js';
import { LidError } from './errors.js';

export interface EmbeddedRedis {
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
}

/** The discovery file's content. */
interface Endpoint {
  pid: number;
  port: number;
  socket: string | null;
  startedAt: string;
}

const MANUAL_INSTALL = 'apt-get install -y --no-install-recommends redis-server';
const SUN_PATH_MAX = 107; // a unix socket path is at most 108 bytes, NUL included

function layout(dataDir: string) {
  const dir = path.resolve(dataDir, 'redis');
  const socket = path.join(dir, 'redis.sock');
  return {
    dir,
    endpoint: path.join(dir, 'endpoint.json'),
    socket: Buffer.byteLength(socket) <= SUN_PATH_MAX ? socket : null,
    log: path.join(dir, 'redis.log'),
    lock: path.join(dir, 'start.lock'),
  };
}
type Layout = ReturnType<typeof layout>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const urlOf = (ep: Endpoint) => `redis://127.0.0.1:${ep.port}`;

/** infra/redis.conf of this Lid checkout, also when running the compiled code in dist/. */
function confPath(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'infra', 'redis.conf');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new LidError('internal', 'infra/redis.conf is missing from the Lid package');
  }
}

// --- A minimal RESP client: enough to probe a server without a client library's reconnect logic -------------------

/**
 * Sends one command to 127.0.0.1:port; resolves a status or error line as it is ("+OK", "-LOADING ..."), a bulk
 * string's payload, or null when the server closed the connection without answering (a successful SHUTDOWN).
 */
function command(port: number, args: string[], timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const conn = net.connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => conn.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (reply: string | null) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(reply); // later calls are no-ops: a promise settles once
    };
    conn.on('connect', () => {
      conn.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    conn.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      const eol = received.indexOf('\r\n');
      if (eol < 0) return;
      const line = received.subarray(0, eol).toString();
      const length = line.startsWith('$') ? Number(line.slice(1)) : -1;
      if (length < 0) finish(line);
      else if (received.length >= eol + 2 + length) finish(received.subarray(eol + 2, eol + 2 + length).toString());
    });
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    conn.on('close', () => finish(null));
  });
}

/** True when the server on ep.port is process ep.pid and has loaded its data (INFO answers during AOF replay). */
async function isReady(ep: Endpoint, timeoutMs = 1000): Promise<boolean> {
  const info = await command(ep.port, ['INFO'], timeoutMs).catch(() => null);
  return !!info && new RegExp(`^process_id:${ep.pid}\\r?$`, 'm').test(info) && /^loading:0\r?$/m.test(info);
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

/** The last lines the server logged since byte `from` of its log. */
function logTail(file: string, from: number, lines = 15): string {
  try {
    const text = fs.readFileSync(file).subarray(from).toString().trimEnd();
    return text.split('\n').slice(-lines).join('\n') || '(nothing logged)';
  } catch {
    return '(no log)';
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
    const ep = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Endpoint>;
    if (Number.isInteger(ep.pid) && Number.isInteger(ep.port)) return ep as Endpoint;
  } catch {
    /* missing or half-written by a crashed writer: as good as none */
  }
  return null;
}

function writeEndpoint(file: string, ep: Endpoint): void {
  // Readers see the old file or the new one, never a partial write.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(ep, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** The endpoint of a server that the discovery file names, when it is ours and answers. No lock needed. */
async function discovered(paths: Layout): Promise<Endpoint | null> {
  const ep = readEndpoint(paths.endpoint);
  return ep && isServerOf(ep.pid, paths.dir) && (await isReady(ep)) ? ep : null;
}

/** Under the start lock: the server running for this directory, if any, once it answers. */
async function running(paths: Layout, timeoutMs: number): Promise<Endpoint | null> {
  const ep = readEndpoint(paths.endpoint);
  if (ep && isServerOf(ep.pid, paths.dir)) {
    await waitUntilReady(ep, paths, timeoutMs, 0);
    return ep;
  }
  // A server without a discovery file: its starter died before writing one, so no client knows it. Stop it rather
  // than guess its port; the caller then starts a fresh one over the same AOF.
  const orphan = findServerProcess(paths.dir);
  if (orphan !== null) await shutDown(orphan, null, paths, timeoutMs);
  return null;
}

/** A failure of the server, quoting what it logged since byte `logFrom` of its log. */
function serverFailure(pid: number, what: string, paths: Layout, logFrom = 0): LidError {
  const message = `redis-server (pid ${pid}) ${what}; ${paths.log} ends with:\n${logTail(paths.log, logFrom)}`;
  return new LidError('setup_failed', message, { pid, log: paths.log });
}

async function waitUntilReady(ep: Endpoint, paths: Layout, timeoutMs: number, logFrom: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await sleep(25)) {
    // Liveness first: a dead server's port may be held by another program that accepts and never answers.
    if (!isServerOf(ep.pid, paths.dir)) throw serverFailure(ep.pid, 'exited before it was ready', paths, logFrom);
    if (await isReady(ep, 250)) return;
    if (Date.now() > deadline) {
      const what = `was not ready on 127.0.0.1:${ep.port} within ${timeoutMs / 1000} s`;
      throw serverFailure(ep.pid, what, paths, logFrom);
    }
  }
}

/**
 * Shuts the server down cleanly and waits for it to exit: SHUTDOWN when its port is known (it fsyncs the AOF, then
 * closes the connection without a reply), else SIGTERM, on which Redis does the same.
 */
async function shutDown(pid: number, port: number | null, paths: Layout, timeoutMs: number): Promise<void> {
  const reply = port === null ? undefined : await command(port, ['SHUTDOWN'], timeoutMs).catch(() => undefined);
  if (reply?.startsWith('-')) throw serverFailure(pid, `refused to shut down (${reply.slice(1)})`, paths);
  if (reply === undefined) signal(pid, 'SIGTERM'); // could not ask
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

async function startServer(paths: Layout, port: number, timeoutMs: number): Promise<Endpoint> {
  const logFrom = fs.existsSync(paths.log) ? fs.statSync(paths.log).size : 0;
  const args = [confPath(), '--dir', paths.dir, '--port', String(port), '--daemonize', 'no'];
  if (paths.socket) args.push('--unixsocket', paths.socket);
  const logFd = fs.openSync(paths.log, 'a', 0o600);
  let pid: number | undefined;
  try {
    // detached: its own session, so neither the end of this command nor a Ctrl-C in its terminal reaches it.
    const child = spawn('redis-server', args, { detached: true, cwd: paths.dir, stdio: ['ignore', logFd, logFd] });
    child.once('error', () => {}); // a failed spawn shows as a missing process below
    child.unref();
    pid = child.pid;
  } finally {
    fs.closeSync(logFd);
  }
  if (pid === undefined) throw new LidError('setup_failed', `could not run redis-server ${args.join(' ')}`);
  const ep = { pid, port, socket: paths.socket, startedAt: new Date().toISOString() };
  try {
    await waitUntilReady(ep, paths, timeoutMs, logFrom);
  } catch (e) {
    if (isServerOf(pid, paths.dir)) signal(pid, 'SIGKILL'); // hung: nothing it wrote is acknowledged yet
    throw e;
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
  const found = await discovered(paths);
  if (found) return { url: urlOf(found), started: false, pid: found.pid };
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 }); // the AOF holds every job's input
  return withDirLock(paths.lock, async () => {
    const other = await running(paths, timeoutMs); // started by whoever held the lock before us
    if (other) return { url: urlOf(other), started: false, pid: other.pid };
    await ensureRedisServer(opts);
    // The previous server's port when there was one, so that clients still connected to a crashed server reconnect to
    // the new one; if something else holds it now, Redis fails to bind and we move on to a fresh port.
    let port = readEndpoint(paths.endpoint)?.port ?? (await freePort());
    for (let attempt = 1; ; attempt++) {
      try {
        const ep = await startServer(paths, port, timeoutMs);
        writeEndpoint(paths.endpoint, ep);
        return { url: urlOf(ep), started: true, pid: ep.pid };
      } catch (e) {
        // Another program holds the port (the previous one's, or a fresh one taken since freePort let go of it).
        if (attempt === 3 || !(e instanceof LidError) || !/already in use/i.test(e.message)) throw e;
        port = await freePort();
      }
    }
  });
}

/**
 * Stops the embedded Redis of `dataDir` cleanly (SHUTDOWN: the AOF is flushed and fsynced) and removes its discovery
 * file. Resolves false when none was running.
 */
export async function stopEmbeddedRedis(dataDir: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
  const paths = layout(dataDir);
  if (!fs.existsSync(paths.dir)) return false;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return withDirLock(paths.lock, async () => {
    const ep = readEndpoint(paths.endpoint);
    const known = ep && isServerOf(ep.pid, paths.dir) ? ep : null;
    const pid = known?.pid ?? findServerProcess(paths.dir); // a server without a discovery file is stopped too
    if (pid !== null) await shutDown(pid, known?.port ?? null, paths, timeoutMs);
    fs.rmSync(paths.endpoint, { force: true });
    return pid !== null;
  });
}
