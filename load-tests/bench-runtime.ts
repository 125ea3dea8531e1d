// Runtime benchmark: how long one sandbox costs end to end, compared with the tools it replaces.
//
// Each contender creates a sandbox on the same busybox root, runs `/bin/true` in it and destroys it, many times:
//   - lid (sequential): one `rt.run` at a time. Wall time per run, plus the runtime's own phase timings
//     (setup / run / teardown) so the report says where the time goes; what is left over is the trip between
//     this thread and the spawner thread (spec validation, postMessage, result delivery).
//   - lid (concurrent): C runs in flight until N complete. Throughput is what a busy worker sees; latency under load
//     shows queueing on the spawner threads.
//   - runc: an OCI bundle with the same limits (memory, swap, pids, cpu quota), namespaces and user, `runc run` per
//     iteration. This is the baseline Lid exists to beat: a fresh Go process, a re-exec and a state directory per run.
//   - bwrap: namespaces and a read-only bind of the root but no cgroups (bubblewrap has no limits), so it is the
//     lower bound for a setuid-helper design, not a like-for-like sandbox.
//   - spawn: plain `child_process.spawn('/bin/true')` on the host, the floor any process-based runner pays.
// Targets (from the issue): lid p50 <= 5 ms, <= bwrap p50, >= 5x faster than runc; concurrent >= 300 runs/s.
//
// Output: a human table, then as the LAST line one JSON object (also saved under load-tests/reports/).
// Needs root (namespaces, mounts, cgroups). Usage: npm run bench:runtime -- [--runs N] [--peer-runs N]
//   [--concurrency C] [--concurrent-runs N] [--threads T] [--net-runs N] [--skip-peers]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS } from '../common/run-spec.js';
import { type RunResult, SandboxRuntime } from '../runtime/index.js';
import { busyboxRootfs } from '../test/busybox-rootfs.js';
import { NetRunner, NetWorld, WORLD_GATEWAY } from '../test/net-world.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '300' },
    // runc costs tens of milliseconds per run; fewer iterations keep the bench short without hurting its p50.
    'peer-runs': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '32' },
    'concurrent-runs': { type: 'string', default: '1000' },
    threads: { type: 'string' },
    'skip-peers': { type: 'boolean', default: false },
    'net-runs': { type: 'string', default: '200' },
  },
});

function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

const RUNS = positiveInt('runs', args.runs);
const PEER_RUNS = positiveInt('peer-runs', args['peer-runs']);
const NET_RUNS = positiveInt('net-runs', args['net-runs']);
const CONCURRENCY = positiveInt('concurrency', args.concurrency);
const CONCURRENT_RUNS = positiveInt('concurrent-runs', args['concurrent-runs']);
const THREADS = args.threads === undefined ? undefined : positiveInt('threads', args.threads);
// The first runs pay for cold caches (page cache, dentries, JIT, the first cgroup directories): keep them out.
const WARMUP = 10;

// The same limits for every contender that supports them: Lid's defaults.
const LIMITS = {
  memoryBytes: DEFAULT_LIMITS.memoryBytes,
  cpus: DEFAULT_LIMITS.cpus,
  pids: DEFAULT_LIMITS.pids,
  timeoutMs: DEFAULT_LIMITS.timeoutMs,
};
const CPU_PERIOD_US = 100_000;
const NOBODY = 65534;

interface Stats {
  runs: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    runs: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean,
  };
}

function median(samples: number[]): number {
  return percentile(
    [...samples].sort((a, b) => a - b),
    50,
  );
}

function round2(n: number | null): number | null {
  return n === null || !Number.isFinite(n) ? null : Math.round(n * 100) / 100;
}

/** Warms up, then times `runs` sequential calls of `once`. */
async function timeSequential(runs: number, once: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < WARMUP; i++) await once(-1 - i);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await once(i);
    samples.push(performance.now() - start);
  }
  return samples;
}

/** Spawns a command with no terminal and resolves with its exit code and stderr (for the error message). */
function exec(cmd: string, argv: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function execOk(cmd: string, argv: string[]): Promise<void> {
  const { code, stderr } = await exec(cmd, argv);
  if (code !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited with ${code}: ${stderr.trim()}`);
}

/** Finds an executable in PATH, plus the sbin directories a non-login root shell may lack. */
function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

function assertOk(r: RunResult): void {
  if (r.status !== 'ok') {
    const stderr = Buffer.from(r.stderr).toString('utf8').trim();
    throw new Error(`lid run failed: status=${r.status} exitCode=${r.exitCode} signal=${r.signal} stderr=${stderr}`);
  }
}

interface LidSequential {
  wall: Stats;
  setupP50: number;
  runP50: number;
  teardownP50: number;
  /** Wall time not inside any runtime phase: validation, the hop to the spawner thread and back. */
  overheadP50: number;
}

async function benchLidSequential(rt: SandboxRuntime, rootfs: string): Promise<LidSequential> {
  const results: RunResult[] = [];
  const wall = await timeSequential(RUNS, async (i) => {
    const r = await rt.run({ rootfs, argv: ['/bin/true'], limits: LIMITS });
    assertOk(r);
    if (i >= 0) results.push(r);
  });
  const t = results.map((r) => r.timings);
  return {
    wall: stats(wall),
    setupP50: median(t.map((x) => x.setupMs)),
    runP50: median(t.map((x) => x.runMs)),
    teardownP50: median(t.map((x) => x.teardownMs)),
    overheadP50: median(wall.map((w, i) => w - ((t[i]?.setupMs ?? 0) + (t[i]?.runMs ?? 0) + (t[i]?.teardownMs ?? 0)))),
  };
}

async function benchLidConcurrent(rt: SandboxRuntime, rootfs: string): Promise<{ latency: Stats; perSecond: number }> {
  const latencies: number[] = [];
  let started = 0;
  // C loops pull from one counter, so exactly C runs are in flight until the last ones drain.
  const loop = async () => {
    while (started < CONCURRENT_RUNS) {
      started++;
      const t0 = performance.now();
      assertOk(await rt.run({ rootfs, argv: ['/bin/true'], limits: LIMITS }));
      latencies.push(performance.now() - t0);
    }
  };
  // Warm up at this concurrency first, as the sequential runs do at theirs: a runtime claims one uid slot per sandbox
  // in flight, each once with its user namespace (about a millisecond), and keeps them, as a busy worker would have.
  await Promise.all(
    Array.from({ length: CONCURRENCY }, () => rt.run({ rootfs, argv: ['/bin/true'], limits: LIMITS }).then(assertOk)),
  );
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, CONCURRENT_RUNS) }, loop));
  const seconds = (performance.now() - start) / 1000;
  return { latency: stats(latencies), perSecond: CONCURRENT_RUNS / seconds };
}

/** An OCI runtime-spec 1.0.2 config mirroring a Lid sandbox, modelled on `runc spec`'s defaults. */
function ociConfig(rootfs: string): object {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: NOBODY, gid: NOBODY },
      args: ['/bin/true'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      // Lid jobs run with no capabilities at all; runc's default set would be a (small) extra privilege.
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    // runc cannot stack layers, so it gets the root read-only plus a tmpfs /tmp where Lid has an overlay.
    root: { path: rootfs, readonly: true },
    hostname: 'lid',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
    ],
    linux: {
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        // swap == limit means no swap, as Lid sets memory.memsw (v1) / memory.swap.max=0 (v2).
        memory: { limit: LIMITS.memoryBytes, swap: LIMITS.memoryBytes, swappiness: 0 },
        pids: { limit: LIMITS.pids },
        cpu: { quota: Math.round(LIMITS.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US },
      },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

async function benchRunc(runc: string, rootfs: string): Promise<Stats> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-bench-runc-'));
  const bundle = path.join(dir, 'bundle');
  // A private state root: nothing this bench does shows up in (or collides with) the host's /run/runc.
  const state = path.join(dir, 'state');
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(ociConfig(rootfs), null, 2));
  try {
    return stats(
      await timeSequential(PEER_RUNS, async (i) => {
        // `runc run` (not -d) is create + start + wait + delete in one call.
        const id = `lid-bench-${process.pid}-${i < 0 ? `w${-i}` : i}`;
        try {
          await execOk(runc, ['--root', state, 'run', '--bundle', bundle, id]);
        } catch (e) {
          await exec(runc, ['--root', state, 'delete', '-f', id]).catch(() => {}); // best effort: leave no container
          throw e;
        }
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchBwrap(bwrap: string, rootfs: string): Promise<Stats> {
  // As root, bwrap only drops to nobody inside a user namespace, hence --unshare-user with --uid/--gid.
  const argv = [
    '--unshare-all',
    '--unshare-user',
    '--uid',
    String(NOBODY),
    '--gid',
    String(NOBODY),
    '--die-with-parent',
    '--ro-bind',
    rootfs,
    '/',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--tmpfs',
    '/tmp',
    '/bin/true',
  ];
  return stats(await timeSequential(PEER_RUNS, () => execOk(bwrap, argv)));
}

/**
 * Networked against loopback-only sandboxes, in a runtime inside a network namespace this benchmark makes (never on
 * the machine's own uplink): the runs alternate, so both see the same machine. bwrap --share-net is the lower bound
 * of a sandbox that builds no network at all.
 */
async function benchNetwork(
  rootfs: string,
  bwrap: string | null,
): Promise<{ none: Stats; internet: Stats; bwrapShareNet: Stats | null }> {
  const world = NetWorld.create();
  try {
    const runner = await NetRunner.start(world, {
      upstreams: [{ address: WORLD_GATEWAY, port: 53 }],
      threads: THREADS,
    });
    try {
      await runner.bench({ rootfs, runs: 20, bwrap: bwrap ?? undefined }); // warm-up
      const s = await runner.bench({ rootfs, runs: NET_RUNS, bwrap: bwrap ?? undefined });
      return {
        none: stats(s.none!),
        internet: stats(s.internet!),
        bwrapShareNet: s.bwrap_share_net!.length ? stats(s.bwrap_share_net!) : null,
      };
    } finally {
      await runner.stop();
    }
  } finally {
    world.destroy();
  }
}

function fmt(n: number | null, digits = 2): string {
  return n === null || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

async function main(): Promise<void> {
  const rootfs = busyboxRootfs();
  // busyboxRootfs() renames an mkdtemp directory into place, so its top is 0700. Lid never notices (the overlay's
  // root takes the tmpfs upper's mode) and neither does bwrap (nobody maps to host root), but runc's nobody could not
  // even look up /bin/true. An image's / is 0755: give it that, so every contender runs on the same, sane root.
  if ((fs.statSync(rootfs).mode & 0o755) !== 0o755) fs.chmodSync(rootfs, 0o755);
  const runcPath = args['skip-peers'] ? null : which('runc');
  const bwrapPath = args['skip-peers'] ? null : which('bwrap');
  const notes: string[] = [];
  if (args['skip-peers']) notes.push('peers skipped (--skip-peers)');
  else {
    if (!runcPath) notes.push('runc not found: runc_p50_ms is null');
    if (!bwrapPath) notes.push('bwrap not found: bwrap_p50_ms is null');
  }

  // The floor first, while nothing else has touched the machine.
  const spawnStats = stats(await timeSequential(PEER_RUNS, () => execOk('/bin/true', [])));

  const rt = await SandboxRuntime.start({ threads: THREADS });
  let seq: LidSequential;
  let conc: { latency: Stats; perSecond: number };
  let cgroupVersion: 1 | 2;
  try {
    cgroupVersion = rt.cgroupVersion;
    seq = await benchLidSequential(rt, rootfs);
    conc = await benchLidConcurrent(rt, rootfs);
  } finally {
    await rt.close();
  }

  const netBench = await benchNetwork(rootfs, bwrapPath);
  const runcStats = runcPath ? await benchRunc(runcPath, rootfs) : null;
  const bwrapStats = bwrapPath ? await benchBwrap(bwrapPath, rootfs) : null;

  const lidP50 = seq.wall.p50;
  const runcOverLid = runcStats ? runcStats.p50 / lidP50 : null;
  const bwrapOverLid = bwrapStats ? bwrapStats.p50 / lidP50 : null;

  const rows: [string, Stats | null][] = [
    ['lid (sequential)', seq.wall],
    [`lid (concurrent x${CONCURRENCY})`, conc.latency],
    ['runc', runcStats],
    ['bwrap (no cgroups)', bwrapStats],
    ['spawn /bin/true (host)', spawnStats],
    ['lid none (in a netns)', netBench.none],
    ['lid internet (veth+nft)', netBench.internet],
    ['bwrap --share-net', netBench.bwrapShareNet],
  ];
  const out: string[] = [];
  out.push(`create + run + destroy of /bin/true on ${rootfs}`);
  out.push(
    `cgroup v${cgroupVersion}, ${os.availableParallelism()} CPUs, kernel ${os.release()}, node ${process.version}`,
  );
  out.push('');
  out.push(
    `${'contender'.padEnd(26)}${'p50 ms'.padStart(9)}${'p90 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'mean ms'.padStart(9)}${'runs'.padStart(7)}`,
  );
  for (const [name, s] of rows) {
    out.push(
      `${name.padEnd(26)}${fmt(s?.p50 ?? null).padStart(9)}${fmt(s?.p90 ?? null).padStart(9)}` +
        `${fmt(s?.p99 ?? null).padStart(9)}${fmt(s?.mean ?? null).padStart(9)}${String(s?.runs ?? '-').padStart(7)}`,
    );
  }
  out.push('');
  out.push(`lid concurrent: ${fmt(conc.perSecond, 1)} runs/s (${CONCURRENT_RUNS} runs, ${CONCURRENCY} in flight)`);
  out.push(`runc p50 / lid p50:  ${fmt(runcOverLid)}x`);
  out.push(`bwrap p50 / lid p50: ${fmt(bwrapOverLid)}x`);
  const netExtra = netBench.internet.p50 - netBench.none.p50;
  out.push(
    `networking (interleaved in a test network namespace, ${NET_RUNS} runs each): internet costs ` +
      `${fmt(netExtra)} ms more than none at p50`,
  );
  out.push('');
  out.push('where lid time goes (sequential, medians):');
  out.push(
    `  setup     ${fmt(seq.setupP50).padStart(7)} ms  (cgroups, namespaces, overlay root, /dev, pivot_root, /proc)`,
  );
  out.push(`  run       ${fmt(seq.runP50).padStart(7)} ms  (exec of /bin/true until its exit is reaped)`);
  out.push(`  teardown  ${fmt(seq.teardownP50).padStart(7)} ms  (usage read-out, cgroup removal)`);
  out.push(`  other     ${fmt(seq.overheadP50).padStart(7)} ms  (spec validation, thread hop and result delivery)`);
  out.push('');
  const check = (label: string, ok: boolean | null) =>
    out.push(`  ${ok === null ? 'n/a ' : ok ? 'PASS' : 'FAIL'}  ${label}`);
  out.push('targets:');
  check(`lid p50 <= 5 ms (${fmt(lidP50)})`, lidP50 <= 5);
  check(`lid p50 <= bwrap p50 (${fmt(bwrapStats?.p50 ?? null)})`, bwrapStats ? lidP50 <= bwrapStats.p50 : null);
  check(`runc >= 5x lid (${fmt(runcOverLid)}x)`, runcOverLid === null ? null : runcOverLid >= 5);
  check(`concurrent >= 300 runs/s (${fmt(conc.perSecond, 1)})`, conc.perSecond >= 300);
  check(`a networked sandbox costs <= 2 ms more at p50 (${fmt(netExtra)})`, netExtra <= 2);
  for (const note of notes) out.push(`note: ${note}`);

  const report = {
    lid_p50_ms: round2(seq.wall.p50),
    lid_p90_ms: round2(seq.wall.p90),
    lid_p99_ms: round2(seq.wall.p99),
    lid_mean_ms: round2(seq.wall.mean),
    lid_setup_p50_ms: round2(seq.setupP50),
    lid_run_p50_ms: round2(seq.runP50),
    lid_teardown_p50_ms: round2(seq.teardownP50),
    lid_overhead_p50_ms: round2(seq.overheadP50),
    lid_concurrent_per_s: round2(conc.perSecond),
    lid_concurrent_p50_ms: round2(conc.latency.p50),
    lid_concurrent_p99_ms: round2(conc.latency.p99),
    runc_p50_ms: round2(runcStats?.p50 ?? null),
    runc_p99_ms: round2(runcStats?.p99 ?? null),
    bwrap_p50_ms: round2(bwrapStats?.p50 ?? null),
    bwrap_p99_ms: round2(bwrapStats?.p99 ?? null),
    spawn_p50_ms: round2(spawnStats.p50),
    lid_net_p50_ms: round2(netBench.internet.p50),
    lid_net_p99_ms: round2(netBench.internet.p99),
    lid_net_none_p50_ms: round2(netBench.none.p50),
    lid_net_extra_p50_ms: round2(netExtra),
    bwrap_share_net_p50_ms: round2(netBench.bwrapShareNet?.p50 ?? null),
    net_runs: NET_RUNS,
    runc_over_lid: round2(runcOverLid),
    bwrap_over_lid: round2(bwrapOverLid),
    runs: RUNS,
    peer_runs: runcStats || bwrapStats ? PEER_RUNS : null,
    concurrency: CONCURRENCY,
    concurrent_runs: CONCURRENT_RUNS,
    cgroup_version: cgroupVersion,
  };
  const json = JSON.stringify(report);
  const reportsDir = fileURLToPath(new URL('reports/', import.meta.url));
  fs.mkdirSync(reportsDir, { recursive: true });
  const file = path.join(reportsDir, `bench-runtime-${new Date().toISOString().replace(/:/g, '-')}.json`);
  fs.writeFileSync(file, json + '\n');
  out.push(`report: ${path.relative(process.cwd(), file)}`);
  console.log(out.join('\n'));
  console.log(json); // must stay the last line: scripts read it
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
