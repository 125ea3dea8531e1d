// Issue 2, points 6-8: nothing is left behind (even after a crash), cancellation is prompt, and many sandboxes run
// at once correctly.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { expect, it, onTestFinished } from 'vitest';
import { SandboxRuntime } from './index.js';
import { busyboxRootfs } from '../test/busybox-rootfs.js';
import { nodeScriptArgs } from '../test/node-script.js';
import { hostProcessesWith } from '../test/host-processes.js';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';

const MiB = 1024 * 1024;

const subdirs = (dir: string) =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);
const hostMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8');
const openFds = () => fs.readdirSync('/proc/self/fd').length;

describePrivileged('sandbox lifecycle', () => {
  const h = useSandboxes();

  // 1200 on the host; the v2 VM, which emulates its CPU, sets fewer (test/run-v2vm.sh).
  const runs = Number(process.env.LID_LEAK_RUNS ?? 1200);
  it(
    `leaves no cgroup, mount, process or descriptor behind after ${runs} runs of every outcome`,
    { timeout: 120_000 },
    async () => {
      const mountsBefore = hostMounts();
      const fdsBefore = openFds();
      const marker = '1.7771';
      const outcomes: Record<string, number> = {};
      const kinds = [
        { argv: ['true'] },
        { argv: ['sh', '-c', 'exit 3'] },
        { argv: ['sleep', marker], limits: { timeoutMs: 30 } },
        { argv: ['tail', '/dev/zero'], limits: { memoryBytes: 8 * MiB } },
        { argv: ['sleep', marker], cancelAfterMs: 20 },
        { argv: ['yes'], limits: { outputBytes: 4096 } },
      ];
      let next = 0;
      const worker = async () => {
        while (next < runs) {
          const { cancelAfterMs, ...spec } = kinds[next++ % kinds.length]!;
          const abort = new AbortController();
          if (cancelAfterMs) setTimeout(() => abort.abort(), cancelAfterMs);
          const outcome = await h.run(spec, abort.signal).then(
            (r) => r.status,
            (e: Error) => e.name,
          );
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const each = runs / kinds.length;
      expect(outcomes).toEqual({
        ok: each,
        nonzero_exit: each,
        timeout: each,
        oom: each,
        AbortError: each,
        output_limit: each,
      });
      for (const dir of h.runtime.cgroupInstanceDirs) expect(subdirs(dir), dir).toEqual([]);
      expect(hostMounts()).toBe(mountsBefore);
      expect(fs.readdirSync('/run/lid/rootfs')).toEqual([]);
      expect(hostProcessesWith(marker)).toEqual([]);
      // Each uid slot the runtime keeps for later sandboxes holds two fds (its lock and its user namespace); it keeps
      // at most as many as ran at once.
      expect(h.runtime.uidSlotsHeld).toBeLessThanOrEqual(16);
      expect(openFds()).toBeLessThanOrEqual(fdsBefore + 2 + 2 * h.runtime.uidSlotsHeld);
    },
  );

  it('kills the whole container within 100 ms of the abort', async () => {
    const marker = '7.7772';
    const abort = new AbortController();
    const running = h.run(
      { argv: ['sh', '-c', `sleep ${marker} & sleep ${marker}`], limits: { timeoutMs: 30_000 } },
      abort.signal,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(hostProcessesWith(marker).length).toBe(2);
    const t = performance.now();
    abort.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - t).toBeLessThan(100);
    expect(hostProcessesWith(marker)).toEqual([]);
  });

  it('rejects at once when the signal is already aborted, starting nothing', async () => {
    await expect(h.run({ argv: ['true'] }, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('runs 32 sandboxes at once, each correct and separate', { timeout: 60_000 }, async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        h.run({
          argv: ['sh', '-c', `echo ${i} > /tmp/me; sleep 0.5; cat /tmp/me; hostname; ls /proc | grep -cE "^[0-9]+$"`],
          hostname: `box-${i}`,
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(r.status).toBe('ok');
      const [me, host] = r.out.split('\n');
      expect([me, host]).toEqual([String(i), `box-${i}`]);
    });
  });

  it('sweeps what a SIGKILLed host process left behind at the next start', { timeout: 60_000 }, async () => {
    const marker = '3.7773';
    const child = spawn(
      process.execPath,
      [...nodeScriptArgs(new URL('../test/host-runtime.ts', import.meta.url).pathname), h.rootfs, marker],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    onTestFinished(() => void child.kill('SIGKILL')); // never leave it behind when an assertion fails early
    const dirs = await new Promise<string[]>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c;
        const m = /started (.*)\n/.exec(out);
        if (m) resolve(JSON.parse(m[1]!) as string[]);
      });
      child.on('exit', (code, signal) =>
        reject(new Error(`host process exited early (code ${code}, signal ${signal})`)),
      );
    });
    // The job runs ("started" is printed from its output)...
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // ...and dies with the process that hosted it (lid-init's parent-death signal), at once...
    for (let waited = 0; hostProcessesWith(marker).length > 0 && waited < 2000; waited += 20)
      await new Promise((r) => setTimeout(r, 20));
    expect(hostProcessesWith(marker)).toEqual([]);
    // ...while its cgroups stay in place...
    for (const dir of dirs) expect(fs.existsSync(dir), dir).toBe(true);
    // ...until the next runtime on this machine starts.
    const next = await SandboxRuntime.start({ threads: 1 });
    await next.close();
    expect(hostProcessesWith(marker)).toEqual([]);
    for (const dir of dirs) expect(fs.existsSync(dir), dir).toBe(false);
  });
});

describePrivileged('the one-call run() API', () => {
  it('runs a sandbox, lets the process exit by itself, and leaves no cgroup behind', () => {
    const rootfs = busyboxRootfs();
    const r = spawnSync(
      process.execPath,
      [...nodeScriptArgs(new URL('../test/run-once.ts', import.meta.url).pathname), rootfs],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(r.stdout).toBe('ok hello from lid\n');
    expect(r.status).toBe(0);
    const pid = r.pid!;
    for (const base of ['/sys/fs/cgroup/pids/lid', '/sys/fs/cgroup/lid']) {
      if (fs.existsSync(base)) expect(fs.readdirSync(base).filter((d) => d.startsWith(`${pid}-`))).toEqual([]);
    }
  });
});
