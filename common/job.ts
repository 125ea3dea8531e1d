// The job contract of the service: what a client submits (over HTTP or straight onto the queue), what travels on
// the queue, and the record a client reads back. Validated with zod so that every mistake names its field; the
// gateway's OpenAPI document is generated from these same schemas.
import { z } from 'zod';
import { type NetworkRequest, NetworkSchema } from './network-policy.js';
import { PartialLimitsSchema, SandboxPath } from './run-spec.js';

export const MAX_FILES = 100;
export const MAX_FILE_BYTES = 1 << 20;
export const MAX_BATCH = 1000;

/** The limits a job may name, each optional: the one limits model's partial form (common/run-spec.ts). */
export const JobLimitsSchema = PartialLimitsSchema;
export type JobLimits = z.infer<typeof JobLimitsSchema>;

export const JobFileSchema = z.strictObject({
  path: SandboxPath,
  content: z.string().max(Math.ceil((MAX_FILE_BYTES * 4) / 3) + 4, `a file may hold at most ${MAX_FILE_BYTES} bytes`),
  encoding: z.enum(['utf8', 'base64']).default('utf8'),
  mode: z.number().int().min(0).max(0o777).optional(),
});

export const JobRequestSchema = z.strictObject({
  image: z.string().min(1).max(255),
  /** The command; empty means the image's default command. */
  command: z.array(z.string().max(65536)).max(4096).default([]),
  files: z.array(JobFileSchema).max(MAX_FILES, `at most ${MAX_FILES} files`).default([]),
  stdin: z.string().max(MAX_FILE_BYTES).optional(),
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name'),
      z.string().max(65536),
    )
    .default({}),
  cwd: SandboxPath.optional(),
  limits: JobLimitsSchema.default({}),
  network: NetworkSchema.describe(
    'what the job may reach: "none" (the default: loopback only), "internet", or {"allow": [...]} listing ' +
      'domains (pypi.org), wildcard subdomains (*.example.com), IPv4 addresses and CIDRs (203.0.113.0/24), each ' +
      "with an optional :PORT or :LOW-HIGH. The tenant's network ceiling (none, allowlist or internet) bounds it.",
  ),
  callbackUrl: z.url({ protocol: /^https?$/ }).optional(),
  priority: z.number().int().min(1).max(10).optional(),
  metadata: z
    .record(z.string().max(64), z.string().max(1024))
    .refine((m) => Object.keys(m).length <= 32, 'at most 32 metadata keys')
    .optional(),
});
export type JobRequest = z.output<typeof JobRequestSchema>;
export type JobRequestInput = z.input<typeof JobRequestSchema>;

export const JOB_STATES = ['queued', 'running', 'completed', 'cancelled', 'error'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: readonly JobState[] = ['completed', 'cancelled', 'error'];

/** What travels on the BullMQ queue: enough for any worker to run the job and to find its record. */
export const QueuedJobSchema = z.strictObject({
  id: z.string().min(1),
  tenant: z.string().min(1),
  request: JobRequestSchema,
  createdAt: z.string(),
  traceparent: z.string().optional(),
  /** The batch the job belongs to: the worker that ends its last job delivers the batch's callback. */
  batchId: z.string().optional(),
});
export type QueuedJob = z.output<typeof QueuedJobSchema>;

export interface JobResultRecord {
  status: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string | null;
  stdoutBase64?: string;
  stderr: string | null;
  stderrBase64?: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  usage: Record<string, unknown>;
}

export interface JobRecord {
  id: string;
  tenant: string;
  image: string;
  state: JobState;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  queueMs: number | null;
  attempts: number;
  result?: JobResultRecord;
  error?: { code: string; message: string };
  traceId: string | null;
  metadata?: Record<string, string>;
  /** The network the job asked for (records written before issue 10 have none: they ran with "none"). */
  network?: NetworkRequest;
}
