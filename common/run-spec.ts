// The contract of one sandboxed run: what the caller asks for (RunSpec, validated with zod so every mistake names
// its field) and what it gets back (RunResult). The runtime, the worker and the CLI all speak these types.
import path from 'node:path/posix';
import { z } from 'zod';
import { NetworkSchema } from './network-policy.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const DEFAULT_LIMITS = Object.freeze({
  timeoutMs: 10_000,
  memoryBytes: 256 * MiB,
  cpus: 1,
  pids: 128,
  outputBytes: 1 * MiB,
  diskBytes: 64 * MiB,
});

/** Bounds that keep a limit meaningful: below them the sandbox cannot even start, above them it is not a limit. */
export const LIMIT_BOUNDS = Object.freeze({
  timeoutMs: [1, 24 * 3600_000],
  memoryBytes: [4 * MiB, 1024 * GiB],
  cpus: [0.01, 1024],
  pids: [1, 1 << 22],
  outputBytes: [0, 1 * GiB],
  diskBytes: [1 * MiB, 1024 * GiB],
} as const);

function bounded(name: keyof typeof LIMIT_BOUNDS, integer = true) {
  const [min, max] = LIMIT_BOUNDS[name];
  const base = integer ? z.number().int() : z.number();
  return base.min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`);
}

// The one limits model: every limit with its bounds, once. A request names some of them (PartialLimitsSchema, the
// job contract's form); a sandbox runs with all of them, the defaults filling what was left out (LimitsSchema, which
// only the runtime applies: everything before it passes the request's own values on).
const LIMIT_SHAPE = {
  timeoutMs: bounded('timeoutMs'),
  memoryBytes: bounded('memoryBytes'),
  cpus: bounded('cpus', false),
  pids: bounded('pids'),
  outputBytes: bounded('outputBytes'),
  diskBytes: bounded('diskBytes'),
};

export const PartialLimitsSchema = z.strictObject(LIMIT_SHAPE).partial();

export const LimitsSchema = z
  .strictObject({
    timeoutMs: LIMIT_SHAPE.timeoutMs.default(DEFAULT_LIMITS.timeoutMs),
    memoryBytes: LIMIT_SHAPE.memoryBytes.default(DEFAULT_LIMITS.memoryBytes),
    cpus: LIMIT_SHAPE.cpus.default(DEFAULT_LIMITS.cpus),
    pids: LIMIT_SHAPE.pids.default(DEFAULT_LIMITS.pids),
    outputBytes: LIMIT_SHAPE.outputBytes.default(DEFAULT_LIMITS.outputBytes),
    diskBytes: LIMIT_SHAPE.diskBytes.default(DEFAULT_LIMITS.diskBytes),
  })
  .prefault({});
export type Limits = z.output<typeof LimitsSchema>;

export const DEFAULT_RLIMITS = Object.freeze({ nofile: 4096, stack: 8 * MiB });

/**
 * Process limits lid-init sets before exec (setrlimit, soft = hard, so the job cannot raise them). Beside these it
 * always sets RLIMIT_CORE to 0 (no core dump reaches the host's handler) and RLIMIT_FSIZE to the disk limit.
 */
export const RlimitsSchema = z
  .strictObject({
    nofile: z
      .number()
      .int()
      .min(16)
      .max(1 << 20)
      .default(DEFAULT_RLIMITS.nofile),
    stack: z
      .number()
      .int()
      .min(64 * KiB)
      .max(1 * GiB)
      .default(DEFAULT_RLIMITS.stack),
  })
  .prefault({});

const bytes = z.union([z.string(), z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'must be text or bytes')]);

/** A path inside the sandbox: absolute, already normal, and not under the kernel-provided trees. */
export const SandboxPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path (start with /)')
  .refine((p) => !p.includes('\0'), 'must not contain NUL bytes')
  .refine((p) => path.normalize(p) === p && !p.split('/').includes('..'), 'must be normal: no "..", "//" or "/./"')
  .refine((p) => !/^\/(proc|dev)(\/|$)/.test(p), 'must not be under /proc or /dev (the kernel provides those)');

export const SandboxFileSchema = z.strictObject({
  path: SandboxPath.refine((p) => p !== '/' && !p.endsWith('/'), 'must name a file, not a directory'),
  content: bytes,
  mode: z.number().int().min(0).max(0o777).default(0o644),
});

const posixName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name');

export const RunSpecSchema = z
  .strictObject({
    /** Read-only layer directories, bottom first (OCI order), or a single root directory. */
    rootfs: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(128)]),
    argv: z
      .array(z.string().refine((a) => !a.includes('\0'), 'must not contain NUL bytes'))
      .min(1, 'argv needs a command'),
    env: z
      .record(
        posixName,
        z.string().refine((v) => !v.includes('\0'), 'must not contain NUL bytes'),
      )
      .default({}),
    cwd: SandboxPath.default('/'),
    stdin: bytes.optional(),
    files: z.array(SandboxFileSchema).max(1000, 'at most 1000 files').default([]),
    /**
     * Who the job runs as, OCI-style: "name", "uid", "name:group" or "uid:gid". Names are looked up in the image's own
     * /etc/passwd and /etc/group, inside the sandbox (never by the host walking the image). Root, or a name that
     * resolves to uid or gid 0, runs as 65534:65534. Give either this or uid/gid.
     */
    user: z
      .string()
      .regex(/^[^:\0\s]{1,256}(:[^:\0\s]{1,256})?$/, 'must be NAME, UID, NAME:GROUP or UID:GID')
      .optional(),
    /** The job's uid and gid inside the sandbox (default 65534); on the host each sandbox gets its own unique uid. */
    uid: z
      .number()
      .int()
      .min(1, 'uid 0 is not allowed: jobs run unprivileged')
      .max(2 ** 32 - 2)
      .optional(),
    gid: z
      .number()
      .int()
      .min(1, 'gid 0 is not allowed: jobs run unprivileged')
      .max(2 ** 32 - 2)
      .optional(),
    hostname: z
      .string()
      .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$/, 'must be a hostname label (letters, digits, -; at most 63)')
      .default('lid'),
    limits: LimitsSchema,
    rlimits: RlimitsSchema,
    /**
     * What the sandbox may reach (common/network-policy.ts): "none" (loopback only), "internet", or {allow: [...]}.
     * The runtime compiles it with compileNetwork and enforces it on the host side (runtime/net/).
     */
    network: NetworkSchema,
  })
  .refine((spec) => spec.user === undefined || (spec.uid === undefined && spec.gid === undefined), {
    message: 'give either user or uid/gid, not both',
    path: ['user'],
  });
export type RunSpecInput = z.input<typeof RunSpecSchema>;
export type RunSpec = z.output<typeof RunSpecSchema>;

export const RUN_STATUSES = ['ok', 'nonzero_exit', 'signaled', 'timeout', 'oom', 'output_limit'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface RunUsage {
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  memoryPeakBytes: number;
  /** Highest number of tasks at once; null where the kernel keeps no peak (cgroup v2 before Linux 6.13). */
  pidsPeak: number | null;
  oomKilled: boolean;
  /** A networked sandbox's traffic (its veth's counters) and the connections its policy refused; absent for none. */
  netRxBytes?: number;
  netTxBytes?: number;
  netDenied?: number;
}

export interface RunTimings {
  setupMs: number;
  runMs: number;
  teardownMs: number;
}

/**
 * Where setup time went, in the order the steps run: the job's cgroups made, the spawner thread's new namespaces
 * entered, the sandbox init spawned, the root filesystem mounted (and the thread back on the host), the init attached
 * to its cgroups. They add up to about timings.setupMs.
 */
export interface SetupSteps {
  cgroupsMs: number;
  namespacesMs: number;
  spawnMs: number;
  mountsMs: number;
  /** A networked sandbox's veth pair, made right after the mounts: part of mountsMs, shown on its own. */
  networkMs?: number;
  attachMs: number;
}

export interface RunResult {
  status: RunStatus;
  exitCode: number | null;
  signal: string | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  usage: RunUsage;
  timings: RunTimings;
  setupSteps?: SetupSteps;
}
