// Lid's configuration: one declarative table of environment variables (name, default, parser, description), read
// once into a frozen, typed object that callers pass down. This is the only module that reads process.env; a bad
// value fails at start with a message naming the variable.
import { z } from 'zod';
import { EgressPolicy } from './egress-policy.js';
import { DEFAULT_NET_POOL, parseDnsUpstream, parseNetPool, parseUplink } from './net-settings.js';
import { LIMIT_BOUNDS } from './run-spec.js';
import { formatSize, parseDuration, parseSize } from './units.js';

const positiveInt = z.coerce.number().int().positive();
const cgroupPath = z.string().regex(/^\/[^\0]*$/, 'must be an absolute cgroup path such as /lid');
// redis:// or rediss:// (TLS) with an optional user, password and database number, as ioredis reads them.
const redisUrl = z
  .string()
  .refine((s) => URL.canParse(s) && /^rediss?:$/.test(new URL(s).protocol) && new URL(s).hostname !== '', {
    message: 'must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379',
  });

/** "FIRST-LAST": an inclusive range of host uids, as { first, count }. */
const uidRange = z
  .string()
  .regex(/^\d+-\d+$/, 'must be FIRST-LAST, e.g. 1879048192-2147483647')
  .transform((text) => {
    const [first, last] = text.split('-').map(Number) as [number, number];
    return { first, count: last - first + 1 };
  })
  .refine((r) => r.first >= 1 && r.count >= 65536 && r.first + r.count - 1 <= 0xfffffffe, {
    message: 'must lie within 1-4294967294 and hold at least 65536 uids (one running sandbox needs 65536)',
  });

/** Text read by a parser that throws a RangeError saying what is wrong (common/net-settings.ts). */
function parsedBy<T>(parse: (text: string) => T) {
  return z.string().transform((text, ctx): T => {
    try {
      return parse(text);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  });
}

/** A size ("8g") or duration ("10m") in the units the CLI takes, as a positive number. */
function sizeOrDuration(parse: (text: string) => number) {
  return z.string().transform((text, ctx) => {
    try {
      const value = parse(text);
      if (value > 0) return value;
      ctx.addIssue({ code: 'custom', message: 'must be above zero' });
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
    return z.NEVER;
  });
}
// A size ("16g") or duration ("60m") read the way the CLI reads them, then held to the limit's own bounds.
const unitsWithin = (
  parse: (text: string) => number,
  [min, max]: readonly [number, number],
  show: (n: number) => string = String,
) =>
  z.string().transform((text, ctx) => {
    let value: number;
    try {
      value = parse(text);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
    if (value < min || value > max) {
      ctx.addIssue({ code: 'custom', message: `must be between ${show(min)} and ${show(max)}` });
      return z.NEVER;
    }
    return value;
  });
const capSize = (name: 'memoryBytes' | 'outputBytes' | 'diskBytes') =>
  unitsWithin(parseSize, LIMIT_BOUNDS[name], formatSize);
// 'auto', or a size such as 512m or 2g (binary units), at least 16 MiB: below that BullMQ's own keys barely fit.
const redisMaxmemory = z
  .string()
  .refine((s) => s === 'auto' || (/^\d+(\.\d+)?\s*[kmg]?(i?b)?$/i.test(s.trim()) && parseSize(s) >= 16 * 2 ** 20), {
    message: 'must be auto or a size of at least 16m, such as 512m or 2g',
  })
  .transform((s): number | 'auto' => (s === 'auto' ? 'auto' : parseSize(s)));

const TABLE = {
  dataDir: {
    env: 'LID_DATA_DIR',
    default: './var',
    schema: z.string().min(1),
    doc: 'where Lid keeps its state (images, embedded Redis)',
  },
  cgroupParent: {
    env: 'LID_CGROUP_PARENT',
    default: undefined,
    schema: cgroupPath.optional(),
    doc: 'cgroup under which Lid makes its own (default: the one it runs in)',
  },
  mountDir: {
    env: 'LID_MOUNT_DIR',
    default: '/run/lid/rootfs',
    schema: z.string().startsWith('/'),
    doc: 'empty directory used as a mount point inside each sandbox (never mounted on the host)',
  },
  sandboxThreads: {
    env: 'LID_SANDBOX_THREADS',
    default: undefined,
    schema: positiveInt.max(64).optional(),
    doc: 'spawner threads per process (default: CPUs, 2..8)',
  },
  sandboxUids: {
    env: 'LID_SANDBOX_UIDS',
    default: '1879048192-2147483647',
    schema: uidRange,
    doc: 'host uids for sandboxes, FIRST-LAST (65536 per running sandbox; must hold no host account)',
  },
  rlimitNofile: {
    env: 'LID_RLIMIT_NOFILE',
    default: '4096',
    schema: z.coerce
      .number()
      .int()
      .min(16)
      .max(1 << 20),
    doc: "open files a job's processes may each hold (RLIMIT_NOFILE)",
  },
  rlimitStack: {
    env: 'LID_RLIMIT_STACK',
    default: '8m',
    schema: sizeOrDuration(parseSize).pipe(
      z
        .number()
        .int()
        .min(64 * 1024)
        .max(1024 ** 3),
    ),
    doc: "stack size of a job's processes (RLIMIT_STACK; 64k..1g)",
  },
  redisUrl: {
    env: 'REDIS_URL',
    default: undefined,
    schema: redisUrl.optional(),
    doc: 'the Redis that holds the queues (default: an embedded redis-server under LID_DATA_DIR)',
  },
  redisMaxmemory: {
    env: 'LID_REDIS_MAXMEMORY',
    default: 'auto',
    schema: redisMaxmemory,
    doc: "the embedded Redis's maxmemory, e.g. 2g (auto: a quarter of the machine's memory); when full, new jobs get 503",
  },
  port: {
    env: 'LID_PORT',
    default: '8080',
    schema: z.coerce.number().int().min(0).max(65535),
    doc: 'the gateway listens on this port (0: any free port)',
  },
  maxStreamsPerTenant: {
    env: 'LID_MAX_STREAMS_PER_TENANT',
    default: '100',
    schema: positiveInt.max(1_000_000),
    doc: 'GET /v1/jobs/:id/events streams a tenant may hold open at once, per gateway process (over it: 429)',
  },
  resultTtlSeconds: {
    env: 'LID_RESULT_TTL',
    default: '86400',
    schema: z.coerce.number().int().positive(),
    doc: 'seconds a finished job record and its events are kept',
  },
  workerConcurrency: {
    env: 'LID_WORKER_CONCURRENCY',
    default: undefined,
    schema: positiveInt.max(1024).optional(),
    doc: 'jobs a worker runs at once (default: from the node capacity, 8 per CPU)',
  },
  shutdownGraceMs: {
    env: 'LID_SHUTDOWN_GRACE_MS',
    default: '30000',
    schema: z.coerce.number().int().min(0),
    doc: 'on SIGTERM, how long a worker lets running jobs finish before cancelling and requeueing them',
  },
  gatewayUrl: {
    env: 'LID_URL',
    default: undefined,
    schema: z.url({ protocol: /^https?$/ }).optional(),
    doc: 'the gateway `lid run` and the load test talk to (default: http://127.0.0.1:LID_PORT)',
  },
  apiKey: {
    env: 'LID_API_KEY',
    default: undefined,
    schema: z.string().min(1).optional(),
    doc: "API key for `lid run` (default: the development tenant's, kept under LID_DATA_DIR)",
  },
  logLevel: {
    env: 'LOG_LEVEL',
    default: 'info',
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    doc: 'pino log level',
  },
  metricsToken: {
    env: 'LID_METRICS_TOKEN',
    default: undefined,
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    doc: 'when set, GET /metrics (gateway and worker) asks for Authorization: Bearer <it>, from any address',
  },
  metricsPublic: {
    env: 'LID_METRICS_PUBLIC',
    default: 'false',
    schema: z.enum(['true', 'false']).transform((v) => v === 'true'),
    doc: "true: the gateway's GET /metrics answers any client without a token (default: loopback clients only)",
  },
  metricsHost: {
    env: 'LID_METRICS_HOST',
    default: '127.0.0.1',
    schema: z.union([z.ipv4(), z.ipv6(), z.literal('localhost')]),
    doc: "address the worker's metrics listener binds (e.g. 0.0.0.0 for a Prometheus on another host)",
  },
  workerMetricsPort: {
    env: 'LID_WORKER_METRICS_PORT',
    default: '9464',
    schema: z.union([z.literal('off'), z.coerce.number().int().min(0).max(65535)]),
    doc: "a worker serves GET /metrics on this port (0: any free port; off: none; `lid up` uses the gateway's)",
  },
  adminToken: {
    env: 'LID_ADMIN_TOKEN',
    default: undefined,
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
    doc: 'opens the read-only /dashboard to whoever holds it (default: dashboard off; `lid up` makes one)',
  },
  // Requests Lid makes for tenants (callbacks, registry pulls for jobs): common/egress-policy.ts says why.
  egress: {
    env: 'LID_ALLOW_PRIVATE_EGRESS',
    default: undefined,
    schema: z
      .string()
      .optional()
      .transform((text, ctx) => {
        try {
          return EgressPolicy.parse(text);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
          return z.NEVER;
        }
      }),
    doc: 'callbacks, job pulls and sandbox networks may also reach: true (private, not metadata) or CIDRs (default: public only)',
  },
  registryHostCredentials: {
    env: 'LID_REGISTRY_HOST_CREDENTIALS',
    default: undefined,
    schema: z
      .string()
      .optional()
      .transform((text) => (text ?? '').split(',').flatMap((h) => (h.trim() ? [h.trim().toLowerCase()] : [])))
      .pipe(
        z.array(z.string().regex(/^[a-z0-9.-]+(:\d{1,5})?$/, 'must be registry hosts such as quay.io,reg.lan:5000')),
      ),
    doc: "registries (host[:port],...) for which job pulls may use the host's registry logins (default: none)",
  },
  // Jobs' networks (`network` in the job contract; runtime/net/ enforces it): common/net-settings.ts parses these.
  netPool: {
    env: 'LID_NET_POOL',
    default: DEFAULT_NET_POOL,
    schema: parsedBy(parseNetPool),
    doc: 'IPv4 CIDR (/8 to /24) networked sandboxes take addresses from; no host route or address may overlap it',
  },
  netUplink: {
    env: 'LID_NET_UPLINK',
    default: undefined,
    schema: parsedBy(parseUplink).optional(),
    doc: "uplink for networked sandboxes, NATed (default: the interface of the default route in the worker's namespace)",
  },
  dnsUpstream: {
    env: 'LID_DNS_UPSTREAM',
    default: undefined,
    schema: parsedBy(parseDnsUpstream).optional(),
    doc: "DNS servers (ip[:port],...) Lid's resolver forwards allowed names to (default: the worker's /etc/resolv.conf)",
  },
  pullMaxBytes: {
    env: 'LID_PULL_MAX_BYTES',
    default: '8g',
    schema: sizeOrDuration(parseSize),
    doc: 'largest image (compressed config and layers) a pull downloads',
  },
  pullTimeoutMs: {
    env: 'LID_PULL_TIMEOUT',
    default: '10m',
    schema: sizeOrDuration(parseDuration),
    doc: 'longest an image pull may take, from the first request to the last byte',
  },
  // Server-wide caps on what any job may have, whatever its tenant's ceilings say (the lower of the two applies).
  // The gateway refuses a job above them and the workers refuse it again, since queue-driven producers skip the
  // gateway: give every gateway and worker the same values. The defaults suit one shared machine.
  capTimeoutMs: {
    env: 'LID_CAP_TIMEOUT',
    default: '60m',
    schema: unitsWithin(parseDuration, LIMIT_BOUNDS.timeoutMs),
    doc: 'largest timeout any job may have, e.g. 60m (a duration: ms, s or m)',
  },
  capMemoryBytes: {
    env: 'LID_CAP_MEMORY',
    default: '16g',
    schema: capSize('memoryBytes'),
    doc: 'largest memory limit any job may have, e.g. 16g',
  },
  capCpus: {
    env: 'LID_CAP_CPUS',
    default: undefined,
    schema: z.coerce.number().min(LIMIT_BOUNDS.cpus[0]).max(LIMIT_BOUNDS.cpus[1]).optional(),
    doc: "most CPUs any job may have (default: this machine's CPU count)",
  },
  capPids: {
    env: 'LID_CAP_PIDS',
    default: '4096',
    schema: z.coerce.number().int().min(LIMIT_BOUNDS.pids[0]).max(LIMIT_BOUNDS.pids[1]),
    doc: 'most processes and threads any job may have at once',
  },
  capOutputBytes: {
    env: 'LID_CAP_OUTPUT',
    default: '64m',
    schema: capSize('outputBytes'),
    doc: 'most output any job may keep per stream (stdout, stderr): held in worker memory and in Redis',
  },
  capDiskBytes: {
    env: 'LID_CAP_DISK',
    default: '16g',
    schema: capSize('diskBytes'),
    doc: 'largest writable layer any job may have',
  },
  signingKeyFile: {
    env: 'LID_SIGNING_KEY_FILE',
    default: undefined,
    schema: z.string().startsWith('/', 'must be an absolute path').optional(),
    doc: 'callback signing key file, the same on every node (default: LID_DATA_DIR/secrets/signing-key)',
  },
  // Trace export, under the standard OpenTelemetry names (read here and passed to the exporter explicitly). With no
  // endpoint nothing is exported; the per-job timeline of GET /v1/jobs/:id/trace is kept in Redis either way.
  otlpEndpoint: {
    env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    default: undefined,
    schema: z.url({ protocol: /^https?$/ }).optional(),
    doc: 'OTLP/HTTP collector base URL; traces go to <url>/v1/traces (default: no export)',
  },
  otlpTracesEndpoint: {
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    default: undefined,
    schema: z.url({ protocol: /^https?$/ }).optional(),
    doc: 'full OTLP/HTTP URL for traces, used as is (overrides OTEL_EXPORTER_OTLP_ENDPOINT)',
  },
  tracesExporter: {
    env: 'OTEL_TRACES_EXPORTER',
    default: 'otlp',
    schema: z.enum(['otlp', 'none']),
    doc: 'otlp, or none to export nothing even when an endpoint is set',
  },
  serviceName: {
    env: 'OTEL_SERVICE_NAME',
    default: undefined,
    schema: z.string().min(1).optional(),
    doc: 'service.name of exported spans (default: lid-gateway, lid-worker or lid)',
  },
  bspScheduleDelayMs: {
    env: 'OTEL_BSP_SCHEDULE_DELAY',
    default: '5000',
    schema: z.coerce.number().int().min(0),
    doc: 'milliseconds between two span exports',
  },
} as const;

/** Variables whose values may hold a secret. */
const SECRET_VARIABLES = new Set(['REDIS_URL', 'LID_API_KEY', 'LID_METRICS_TOKEN', 'LID_ADMIN_TOKEN']);

type Table = typeof TABLE;
export type LidConfig = Readonly<{ [K in keyof Table]: z.output<Table[K]['schema']> }>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): LidConfig {
  const out: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(TABLE)) {
    const raw = env[entry.env];
    const parsed = (entry.schema as z.ZodType).safeParse(raw === undefined || raw === '' ? entry.default : raw);
    if (!parsed.success) {
      // Secrets (a Redis URL's password, tokens) are never echoed into a message that ends up in logs.
      const shown = SECRET_VARIABLES.has(entry.env) ? `<hidden, ${raw?.length ?? 0} characters>` : JSON.stringify(raw);
      throw new ConfigError(`${entry.env}=${shown} is invalid: ${parsed.error.issues[0]?.message} (${entry.doc})`);
    }
    out[key] = parsed.data;
  }
  return Object.freeze(out) as LidConfig;
}

/** The documented variables, for `lid --help` and the README. */
export function describeConfig(): { env: string; default: string | undefined; doc: string }[] {
  return Object.values(TABLE).map((e) => ({ env: e.env, default: e.default, doc: e.doc }));
}
