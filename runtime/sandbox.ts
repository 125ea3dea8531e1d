// One sandbox's life, on a spawner thread: create (cgroup, namespaces, init spawned at its gate, rootfs, pivot_root,
// back to the host, attach to the cgroup, open the gate) -> run (stdin in, capped output out, timeout) -> destroy
// (the init is PID 1 of the sandbox's pid namespace, so killing it kills every process in the sandbox; then the
// cgroup goes). The setup is one synchronous block: no await while the thread is inside the sandbox's namespaces.
import fs from 'node:fs';
import { LidError } from '../common/errors.js';
import type { RunResult, RunStatus, SetupSteps } from '../common/run-spec.js';
import type { CgroupDriver, CgroupUsage, JobCgroup } from './cgroups/driver.js';
import { InitProcess } from './init-process.js';
import type { HostNamespaces } from './namespaces.js';
import { encodeInitSpec } from './init-spec.js';
import { CappedOutput } from './output.js';
import type { PreparedRun } from './protocol.js';
import { buildAndEnterRootfs } from './rootfs.js';
import { closeNamespaceFd, type LinkCounters, SandboxLink } from './net/sandbox-link.js';
import type { RouteNetlink } from './net/rtnetlink.js';
import * as sys from './syscalls.js';

export type KillReason = 'timeout' | 'output_limit' | 'cancelled';

export interface SandboxContext {
  host: HostNamespaces;
  cgroups: CgroupDriver;
  initPath: string;
  mountDir: string;
  /** The job's seccomp filter (runtime/seccomp.ts), which lid-init installs last before exec. */
  seccomp: Uint8Array;
  /** The thread's rtnetlink socket, opened in the runtime's network namespace: networked sandboxes' veths. */
  netlink: RouteNetlink;
}

const GO = new Uint8Array([0x67]);
const FSIZE_MARGIN = 64 * 1024;

/** lid-init reports "STAGE ERRNO" when it cannot start the job; turn that into an error a user can act on. */
function initFailure(report: string, run: PreparedRun): LidError {
  const match = /^(.*) (\d+)$/.exec(report.trim());
  const stage = match?.[1] ?? report;
  const errno = Number(match?.[2] ?? 0);
  const errnoName = sys.errnoName(errno);
  if (stage === 'exec') {
    const what =
      errnoName === 'ENOENT'
        ? 'was not found'
        : errnoName === 'EACCES'
          ? 'is not executable'
          : `could not be executed (${errnoName})`;
    return new LidError(
      'invalid_spec',
      `the command ${JSON.stringify(run.argv[0])} ${what} in the sandbox (PATH=${run.env.PATH ?? ''})`,
      { stage, errno: errnoName },
    );
  }
  if (stage === 'chdir to the working directory') {
    return new LidError(
      'invalid_spec',
      `cannot enter the working directory ${JSON.stringify(run.cwd)} (${errnoName})`,
      { stage, errno: errnoName },
    );
  }
  const image = imageUserFailure(stage, errnoName, run.user);
  if (image) return image;
  return new LidError('setup_failed', `sandbox init failed at "${stage}": ${errnoName}`, { stage, errno: errnoName });
}

const ID_FILE_PROBLEMS: Record<string, string> = {
  ELOOP: 'is a symlink (or reached through a symlink loop)',
  EINVAL: 'is not a regular file',
  EFBIG: 'is larger than 1 MiB',
  ENOTDIR: 'is not reachable: a part of its path is not a directory',
  EACCES: 'is not readable',
};

/** lid-init could not resolve the image's user: the image is at fault, and says so in terms of the image. */
function imageUserFailure(stage: string, errnoName: string, user: string): LidError | null {
  const file = /^read the image's (\/etc\/(passwd|group))$/.exec(stage)?.[1];
  if (file) {
    const why = ID_FILE_PROBLEMS[errnoName] ?? `cannot be read (${errnoName})`;
    return new LidError('invalid_image', `the image's ${file} ${why}, so its user "${user}" cannot be looked up`, {
      stage,
      errno: errnoName,
    });
  }
  if (stage === "map the image's user") {
    return new LidError(
      'invalid_image',
      `the image's user "${user}" has a uid or gid above 65535, the highest a Lid sandbox maps`,
      { stage, user },
    );
  }
  if (stage === "find the image's user" || stage === "find the image's group") {
    const [name, group] = user.split(':');
    const what = stage.endsWith('user')
      ? `user "${name}" is not in its /etc/passwd`
      : `group "${group}" is not in its /etc/group`;
    return new LidError('invalid_image', `the image's ${what}`, { stage, user });
  }
  return null;
}

export class Sandbox {
  private child: InitProcess | null = null;
  private cgroup: JobCgroup | null = null;
  private killReason: KillReason | null = null;
  private statusFd = -1;
  private gateFd = -1;
  private link: SandboxLink | null = null;
  private networkMs: number | null = null;
  private readonly t0 = performance.now();
  private tGate = 0;
  /** performance.now() after each setup step but the last (SetupSteps order); the gate time ends the last. */
  private readonly marks: number[] = [];

  constructor(
    private readonly run: PreparedRun,
    private readonly ctx: SandboxContext,
    private readonly name: string,
    private readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void,
  ) {}

  /** Kills every process of the sandbox. The result then reports the reason (a cancelled run reports none). */
  kill(reason: KillReason): void {
    this.killReason ??= reason;
    this.child?.kill();
  }

  /** Creates and starts the sandbox, then resolves with its result once it has ended and been cleaned up. */
  async execute(): Promise<RunResult | 'cancelled'> {
    try {
      this.create();
    } catch (e) {
      await this.abandon();
      throw e;
    }
    return this.supervise();
  }

  private create(): void {
    const { run, ctx } = this;
    this.cgroup = ctx.cgroups.create(this.name, {
      memoryBytes: run.limits.memoryBytes,
      cpus: run.limits.cpus,
      pids: run.limits.pids,
    });
    this.marks.push(performance.now());
    const spec = sys.memfd('lid-init-spec'); // filled once the root is built; lid-init reads it after its gate
    const [gateRead, gateWrite] = sys.pipe();
    const [statusRead, statusWrite] = sys.pipe();
    this.statusFd = statusRead;
    this.gateFd = gateWrite;
    let owned: string[];
    let netnsFd = -1;
    try {
      ctx.host.enterNew();
      if (run.net) netnsFd = SandboxLink.holdNetworkNamespace();
      this.marks.push(performance.now());
      try {
        // The init starts on the host's root, inside the new namespaces, and waits at its gate (fd 3).
        this.child = InitProcess.spawn(ctx.initPath, gateRead, statusWrite, spec, run.slot.usernsFd);
        this.marks.push(performance.now());
        sys.sethostname(run.hostname);
        owned = buildAndEnterRootfs({
          layers: run.layers,
          mountDir: ctx.mountDir,
          diskBytes: run.limits.diskBytes,
          files: run.files,
          systemFiles: run.systemFiles,
          cwd: run.cwd,
          slot: run.slot,
        });
      } finally {
        // If this fails the thread is unusable; the error reaches sandbox-thread.ts, which ends the thread.
        ctx.host.restore();
      }
      if (run.net) {
        const fd = netnsFd;
        netnsFd = -1;
        const t = performance.now();
        try {
          this.link = SandboxLink.create(ctx.netlink, run.net, fd);
        } catch (e) {
          closeNamespaceFd(fd);
          throw e;
        }
        this.networkMs = performance.now() - t;
      }
      sys.pwriteAll(
        spec,
        encodeInitSpec({
          idBase: run.slot.base,
          maxId: run.slot.maxId,
          user: run.user,
          cwd: run.cwd,
          // Just above the disk: a job that fills its disk sees ENOSPC, not SIGXFSZ; no file can pass the limit.
          rlimits: { ...run.rlimits, fsize: run.limits.diskBytes + FSIZE_MARGIN },
          net: run.net && { address: run.net.address, prefix: run.net.prefix, gateway: run.net.gateway },
          owned,
          argv: run.argv,
          env: run.env,
          seccomp: ctx.seccomp,
        }),
      );
    } finally {
      if (netnsFd >= 0) closeNamespaceFd(netnsFd);
      sys.close(gateRead);
      sys.close(statusWrite);
      sys.close(spec);
    }
    this.marks.push(performance.now());
    // Into the cgroup before its first instruction: the init still waits at its gate.
    this.cgroup.attach(this.child!.pid);
    this.tGate = performance.now();
    sys.write(gateWrite, GO);
    sys.close(gateWrite);
    this.gateFd = -1;
  }

  /** After a failed create: end whatever was started and remove what was made. */
  private async abandon(): Promise<void> {
    if (this.child) {
      this.child.kill();
      await this.child.exited;
    }
    if (this.gateFd >= 0) sys.close(this.gateFd); // lid-init reads end of file at its gate and exits
    if (this.statusFd >= 0) sys.close(this.statusFd);
    this.link?.close();
    this.cgroup?.destroy();
  }

  private async supervise(): Promise<RunResult | 'cancelled'> {
    const { run } = this;
    const child = this.child!;
    const overflow = () => this.kill('output_limit');
    const stdout = new CappedOutput(
      run.limits.outputBytes,
      overflow,
      this.onOutput && ((c) => this.onOutput!('stdout', c)),
    );
    const stderr = new CappedOutput(
      run.limits.outputBytes,
      overflow,
      this.onOutput && ((c) => this.onOutput!('stderr', c)),
    );
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    if (run.stdin?.length) child.stdin.end(run.stdin);
    else child.stdin.end();
    const timer = setTimeout(() => this.kill('timeout'), run.limits.timeoutMs);
    const { exitCode, signal, at: tExit } = await child.exited;
    clearTimeout(timer);

    const report = this.readStatus();
    let usage: CgroupUsage;
    let net: LinkCounters | null = null;
    try {
      usage = this.cgroup!.usage();
      net = this.link?.counters() ?? null;
    } finally {
      this.link?.close();
      this.cgroup!.destroy();
    }
    const tDone = performance.now();
    if (report) throw initFailure(report, run);
    if (this.killReason === 'cancelled') return 'cancelled';

    const status: RunStatus =
      this.killReason ?? (usage.oomKills > 0 ? 'oom' : signal ? 'signaled' : exitCode !== 0 ? 'nonzero_exit' : 'ok');
    return {
      status,
      exitCode,
      signal,
      stdout: stdout.bytes(),
      stderr: stderr.bytes(),
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      usage: {
        wallMs: round(tExit - this.tGate),
        cpuUserMs: round(usage.cpuUserMs),
        cpuSystemMs: round(usage.cpuSystemMs),
        memoryPeakBytes: usage.memoryPeakBytes,
        pidsPeak: usage.pidsPeak,
        oomKilled: usage.oomKills > 0,
        ...net,
      },
      timings: {
        setupMs: round(this.tGate - this.t0),
        runMs: round(tExit - this.tGate),
        teardownMs: round(tDone - tExit),
      },
      setupSteps: this.setupSteps(),
    };
  }

  private setupSteps(): SetupSteps {
    const [cgroups, namespaces, spawned, mounted] = this.marks as [number, number, number, number];
    return {
      cgroupsMs: round(cgroups - this.t0),
      namespacesMs: round(namespaces - cgroups),
      spawnMs: round(spawned - namespaces),
      mountsMs: round(mounted - spawned),
      ...(this.networkMs === null ? {} : { networkMs: round(this.networkMs) }),
      attachMs: round(this.tGate - mounted),
    };
  }

  private readStatus(): string {
    const buf = Buffer.alloc(256);
    try {
      const n = fs.readSync(this.statusFd, buf); // the writer has exited or exec'd: this never blocks
      return buf.subarray(0, n).toString();
    } finally {
      sys.close(this.statusFd);
      this.statusFd = -1;
    }
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
