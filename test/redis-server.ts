// A private redis-server for tests: its own port and directory, AOF on (as the embedded default runs it), and
// kill/restart on the same port and data, for the durability tests. It is locked down as the embedded server is
// (cli/local/redis-credentials.ts): the `default` user off, Lid's user with a password and the same denied commands,
// so every test that uses it also checks that Lid and BullMQ work through a URL with credentials and that the
// commands Lid's user may not run are commands they never need.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { aclFileContent, REDIS_USER } from '../cli/local/redis-credentials.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not come up`);
}

export interface TestRedis {
  /** redis://lid:<password>@127.0.0.1:<port> */
  url: string;
  port: number;
  password: string;
  dir: string;
  /** SIGKILL: no shutdown save, only what the AOF already holds survives. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface TestRedisOptions {
  /** maxmemory, as redis.conf takes it (e.g. "8mb"); default none. */
  maxmemory?: string;
}

export async function startTestRedis(opts: TestRedisOptions = {}): Promise<TestRedis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-test-redis-'));
  const port = await freePort();
  const password = crypto.randomBytes(16).toString('hex');
  fs.writeFileSync(path.join(dir, 'users.acl'), aclFileContent(password), { mode: 0o600 });
  let child: ChildProcess;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--save',
        '',
        '--maxmemory-policy',
        'noeviction',
        '--aclfile',
        path.join(dir, 'users.acl'),
        ...(opts.maxmemory ? ['--maxmemory', opts.maxmemory] : []),
      ],
      { stdio: 'ignore' },
    );
    await waitForPort(port);
  };
  const kill = async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url: `redis://${REDIS_USER}:${password}@127.0.0.1:${port}`,
    port,
    password,
    dir,
    kill,
    restart: start,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
