// Lid's configuration: one declarative table of environment variables (name, default, parser, description), read
// once into a frozen, typed object that callers pass down. This is the only module that reads process.env; a bad
// value fails at start with a message naming the variable.
import { z } from 'zod';
import { parseSize } from './units.js';

const positiveInt = z.coerce.number().int().positive();
const cgroupPath = z.string().regex(/^\/[^\0]*$/, 'must be an absolute cgroup path such as /lid');
// redis:// or rediss:// (TLS) with an optional user, password and database number, as ioredis reads them.
const redisUrl = z
  .string()
  .refine((s) => URL.canParse(s) && /^rediss?:$/.test(new URL(s).protocol) && new URL(s).hostname !== '', {
    message: 'must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379',
  });

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
