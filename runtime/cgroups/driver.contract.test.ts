// One contract for both cgroup drivers, run against the driver this host's detection picks: v1 on the development
// machines, v2 under ../shared/tools/v2vm (npm run test:v2). Real cgroups, real processes.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePrivileged } from '../../test/privileged.js';
import { createCgroupDriver, detectCgroupVersion } from './detect.js';
import type { CgroupDriver } from './driver.js';
import { readCgroupMounts, readOwnCgroups } from './hierarchy.js';

const MiB = 1024 * 1024;
const limits = { memoryBytes: 48 * MiB, cpus: 0.5, pids: 17 };

/** Where each version keeps the limits, and how it writes them: the only version-specific knowledge here. */
const LIMIT_FILES = {
  1: {
    memory: 'memory.limit_in_bytes',
    pids: 'pids.max',
    cpu: 'cpu.cfs_quota_us',
    cpuValue: '50000',
    // memory+swap equal to memory: not one byte of swap
    swap: 'memory.memsw.limit_in_bytes',
    swapValue: String(limits.memoryBytes),
  },
  2: {
    memory: 'memory.max',
    pids: 'pids.max',
    cpu: 'cpu.max',
    cpuValue: '50000 100000',
    swap: 'memory.swap.max',
    swapValue: '0',
  },
} as const;

function startSleeper(): ChildProcess {
  return spawn('/bin/sh', ['-c', 'sleep 60'], { stdio: 'ignore' });
}

function cgroupOf(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
}

describePrivileged(`cgroup v${detectCgroupVersion()} driver`, () => {
  let driver: CgroupDriver;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    driver = createCgroupDriver();
  });
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    driver?.close();
  });

  it('is the driver the host calls for', () => {
    expect(driver.version).toBe(detectCgroupVersion());
    // The v2 VM run sets LID_EXPECT_CGROUP=2: a VM that fell back to v1 must not pass as a v2 run.
    if (process.env.LID_EXPECT_CGROUP) expect(String(driver.version)).toBe(process.env.LID_EXPECT_CGROUP);
  });

  it('creates a job cgroup with the limits, in v2 terms translated for the host', () => {
    const job = driver.create('contract-limits', limits);
    try {
      const files = LIMIT_FILES[driver.version];
      const read = (file: string) => {
        const dir = driver.instanceDirs.find((d) => fs.existsSync(`${d}/contract-limits/${file}`));
        return fs.readFileSync(`${dir}/contract-limits/${file}`, 'utf8').trim();
      };
      expect(read(files.memory)).toBe(String(limits.memoryBytes));
      expect(read(files.pids)).toBe('17');
      expect(read(files.cpu)).toBe(files.cpuValue);
      expect(read(files.swap)).toBe(files.swapValue); // no swap, read back from the kernel
    } finally {
      job.destroy();
    }
  });

  it('attaches a running process, reports its usage, and kills it on destroy', async () => {
    const job = driver.create('contract-attach', limits);
    // A busy loop for as long as the test lets it run: at 0.5 CPU, 1.2 s of wall time is about 0.6 s of CPU. The
    // loop starts with a subshell that allocates, because memory already charged elsewhere does not move with
    // a process (cgroup v1), so an idle shell would show a peak of zero.
    const child = spawn('/bin/sh', ['-c', 'x=$(head -c 4000000 /dev/zero | tr "\\0" a); while :; do :; done'], {
      stdio: 'ignore',
    });
    children.push(child);
    job.attach(child.pid!);
    expect(cgroupOf(child.pid!)).toContain('/contract-attach');
    await new Promise((r) => setTimeout(r, 1200));
    const usage = job.usage();
    expect(usage.cpuUserMs + usage.cpuSystemMs).toBeGreaterThan(300); // ~0.6 s at half a CPU
    expect(usage.cpuUserMs + usage.cpuSystemMs).toBeLessThan(900);
    expect(usage.memoryPeakBytes).toBeGreaterThan(0);
    expect(usage.oomKills).toBe(0);
    const exited = new Promise((r) => child.once('exit', r));
    job.destroy();
    await exited;
    for (const dir of driver.instanceDirs) expect(fs.existsSync(`${dir}/contract-attach`)).toBe(false);
    job.destroy(); // idempotent
  });

  it('sweeps the cgroups of a dead instance, killing what still runs there', async () => {
    // A directory named like an instance whose process is gone (pid 999999999 cannot exist).
    const ghost = driver.instanceDirs.map((d) => d.replace(/[^/]+$/, '999999999-1'));
    for (const dir of ghost) fs.mkdirSync(`${dir}/job-1`, { recursive: true });
    const child = startSleeper();
    children.push(child);
    await new Promise((r) => setTimeout(r, 50));
    for (const dir of ghost) fs.writeFileSync(`${dir}/job-1/cgroup.procs`, String(child.pid));
    const exited = new Promise((r) => child.once('exit', r));
    const next = createCgroupDriver();
    await exited;
    for (const dir of ghost) expect(fs.existsSync(dir)).toBe(false);
    expect(next.instanceDirs).toEqual(driver.instanceDirs); // same process, same instance
  });

  it("places Lid's tree under the cgroup this process runs in", () => {
    const own = readOwnCgroups();
    const mounts = readCgroupMounts();
    for (const dir of driver.instanceDirs) {
      const mount = mounts.find((m) => dir.startsWith(`${m.mountPoint}/`))!;
      const key = driver.version === 2 ? '' : (mount.controllers[0] ?? '');
      const within = (own.get(key) ?? '/').replace(/\/lid-service$/, '');
      expect(dir.startsWith(`${mount.mountPoint}${within === '/' ? '' : within}/lid/`), dir).toBe(true);
    }
  });
});
