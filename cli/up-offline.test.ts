// `lid up` started inside a network namespace with no way out, as a worker in an isolated pod or a test namespace
// is: its default route leads into a namespace that forwards nothing, so a DNS query or a connection gets no answer
// (the slow kind of unreachable, where apt waits out a DNS timeout for every package). The default images cannot be built (their recipes fetch
// Debian packages), and Lid must still start within seconds, saying which images it goes without; and stopped while
// it builds, it must leave nothing running.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;

describePrivileged('lid up without a network', () => {
  const tag = crypto.randomBytes(3).toString('hex');
  const netns = `lidt-${tag}-off`;
  const voidNs = `lidt-${tag}-void`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-up-offline-'));
  let child: ChildProcess | undefined;

  beforeAll(() => {
    // The default route leads into a second namespace that forwards nothing: what leaves is never answered.
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['netns', 'add', voidNs]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['link', 'add', 'v0', 'netns', netns, 'type', 'veth', 'peer', 'name', 'v1', 'netns', voidNs]);
    execFileSync('ip', ['-n', netns, 'addr', 'add', '192.0.2.2/24', 'dev', 'v0']);
    execFileSync('ip', ['-n', voidNs, 'addr', 'add', '192.0.2.1/24', 'dev', 'v1']);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'v0', 'up']);
    execFileSync('ip', ['-n', voidNs, 'link', 'set', 'v1', 'up']);
    execFileSync('ip', ['-n', netns, 'route', 'add', 'default', 'via', '192.0.2.1']);
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    for (const ns of [netns, voidNs]) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('starts without the images it cannot build, and says which', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LID_DATA_DIR: path.join(tmp, 'data'), LID_PORT: '0' };
    delete env.REDIS_URL;
    child = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, lidBin, 'up'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c));
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (c: Buffer) => {
        out += c;
        if (/API reference: http:\/\/127\.0\.0\.1:\d+\/docs\n/.test(out)) resolve();
      });
      child!.once('exit', (code) => reject(new Error(`lid up exited (${code}): ${err}`)));
    });
    expect(err).toMatch(/the package mirrors cannot be reached from here: cannot (resolve|connect to) \S+ \(/);
    expect(err).not.toMatch(/building the \w+ image/);
    expect(err).toMatch(
      /starting without the busybox, python, node, bash images: build them later with `lid images build NAME`/,
    );
  }, 300_000);

  it('stopped while it builds, leaves no Redis and no apt process behind', async () => {
    const dataDir = path.join(tmp, 'data-interrupted');
    // Through a proxy (which the mirror check leaves to apt) whose address swallows the connection: apt waits.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LID_DATA_DIR: dataDir,
      LID_PORT: '0',
      http_proxy: 'http://192.0.2.77:3128',
    };
    delete env.REDIS_URL;
    const up = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, lidBin, 'up'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      up.stderr!.on('data', (c: Buffer) => {
        err += c;
        if (/building the busybox image/.test(err)) resolve();
      });
      up.once('exit', (code) => reject(new Error(`lid up exited (${code}): ${err}`)));
    });
    const mine = () =>
      fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
            return (
              (cmd.startsWith('redis-server') && fs.readlinkSync(`/proc/${p}/cwd`).startsWith(dataDir)) ||
              (cmd.startsWith('apt-get') && cmd.includes(dataDir))
            );
          } catch {
            return false; // gone meanwhile
          }
        });
    expect(mine().length).toBeGreaterThan(0); // its Redis runs (and apt, unless it has already given up)
    const code = await new Promise<number | null>((resolve) => {
      up.once('exit', (c) => resolve(c));
      up.kill('SIGINT');
    });
    expect(code).toBe(130);
    expect(err).toMatch(/interrupted while starting/);
    // apt ends on the SIGTERM it was sent, a moment after lid up itself.
    for (let tries = 0; tries < 50 && mine().length > 0; tries++) await new Promise((r) => setTimeout(r, 100));
    expect(mine()).toEqual([]);
  }, 120_000);
});
