// The HTTP API's wire contract beside the job contract of common/job.ts: batch requests, query parameters, the
// shapes of responses, the events of a job's stream and the error envelope with its codes. Both sides read it: the
// gateway declares its routes with these schemas (gateway/routes/*, which /openapi.json is generated from) and
// LidClient (common/http-client.ts) takes its types from them, so the client cannot assume a shape the gateway does
// not serve. The query schemas validate; the response schemas document (and type the handlers' replies).
import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import { JOB_STATES, type JobRecord, JobRequestSchema, MAX_BATCH } from './job.js';
import { NetworkSchema } from './network-policy.js';
import { RUN_STATUSES } from './run-spec.js';

/** Every code an error envelope can carry: LidError's, plus those only HTTP has (authentication, quotas, sizes). */
export const API_ERROR_CODES = [
  ...ERROR_CODES,
  'unauthorized',
  'forbidden',
  'conflict',
  'payload_too_large',
  'rate_limited',
  'queue_full',
  'unavailable',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export const BatchRequestSchema = z.strictObject({
  jobs: z
    .array(JobRequestSchema)
    .min(1, 'a batch needs at least one job')
    .max(MAX_BATCH, `a batch holds at most ${MAX_BATCH} jobs`),
  callbackUrl: z.url({ protocol: /^https?$/ }).optional(),
});
export type BatchRequestInput = z.input<typeof BatchRequestSchema>;

export const WaitQuerySchema = z.object({
  wait: z.coerce
    .number('wait must be a number of seconds')
    .min(0, 'wait must be at least 0 seconds')
    .max(60, 'wait may be at most 60 seconds')
    .optional()
    .describe('seconds to wait for the job to end (0..60): 200 with the final record if it does, else 202'),
});

export const PageQuerySchema = z.object({
  cursor: z.coerce
    .number('cursor must be a nextCursor from an earlier page')
    .int('cursor must be a nextCursor from an earlier page')
    .min(0, 'cursor must be a nextCursor from an earlier page')
    .default(0)
    .describe('nextCursor of the previous page; leave out for the first'),
  limit: z.coerce
    .number('limit must be a number')
    .int('limit must be a whole number')
    .min(1, 'limit must be at least 1')
    .max(MAX_BATCH, `limit may be at most ${MAX_BATCH}`)
    .default(100)
    .describe('jobs per page (1..1000)'),
});

/** No ":" allowed: keys are stored as lid:idem:<tenant>:<key> and batch keys as ...:batch:<key>, which must not meet. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.+/=-]{1,255}$/;

/** The headers a submission may carry besides Authorization. */
export const SubmitHeadersSchema = z.object({
  'Idempotency-Key': z
    .string()
    .regex(IDEMPOTENCY_KEY, 'Idempotency-Key must be 1 to 255 characters from A-Z a-z 0-9 _ . + / = - (a UUID works)')
    .optional()
    .describe('a retried submission with the same key returns the job (or batch) the first one made'),
  traceparent: z
    .string()
    .optional()
    .describe("W3C trace context: the job's spans continue this trace (a malformed one is ignored)"),
});

const JobResultSchema = z.object({
  status: z.string().describe(`how the run ended: ${RUN_STATUSES.join(', ')}`),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  stdout: z.string().nullable().describe('null when the output is not UTF-8: then stdoutBase64 holds it'),
  stdoutBase64: z.string().optional(),
  stderr: z.string().nullable(),
  stderrBase64: z.string().optional(),
  stdoutTruncated: z.boolean(),
  stderrTruncated: z.boolean(),
  usage: z.record(z.string(), z.unknown()),
});

export const JobRecordSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  image: z.string(),
  state: z.enum(JOB_STATES),
  createdAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  finishedAt: z.iso.datetime().nullable(),
  queueMs: z.number().nullable().describe('time from submission to start'),
  attempts: z.number().int(),
  result: JobResultSchema.optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  traceId: z.string().nullable(),
  metadata: z.record(z.string(), z.string()).optional(),
  network: NetworkSchema.unwrap()
    .optional()
    .describe('the network the job asked for (absent on records from before networking: those ran with "none")'),
});
// Fails the typecheck when common/job.ts changes the record without this schema following, and the other way round.
const _recordMatchesSchema = (r: JobRecord): z.input<typeof JobRecordSchema> => r;
const _schemaMatchesRecord = (r: z.output<typeof JobRecordSchema>): JobRecord => r;

export const BatchCreatedSchema = z.object({ id: z.string(), total: z.number().int() });
export type BatchCreated = z.output<typeof BatchCreatedSchema>;

export const BatchViewSchema = z.object({
  id: z.string(),
  total: z.number().int(),
  createdAt: z.iso.datetime(),
  callbackUrl: z.string().nullable(),
  counts: z.object(
    Object.fromEntries(JOB_STATES.map((s) => [s, z.number().int()])) as Record<
      (typeof JOB_STATES)[number],
      z.ZodNumber
    >,
  ),
  jobs: z.array(JobRecordSchema).describe('records of this page; jobs whose records expired are left out'),
  nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last'),
});
export type BatchView = z.output<typeof BatchViewSchema>;

export const JobTraceSchema = z.object({
  jobId: z.string(),
  traceId: z.string().nullable().describe('null when the job has no trace'),
  spans: z
    .array(
      z.object({
        name: z.string(),
        spanId: z.string(),
        parentSpanId: z.string().nullable().describe('a parent that is not listed is the client traceparent'),
        start: z.iso.datetime(),
        startMs: z.number(),
        durationMs: z.number(),
        attributes: z.record(z.string(), z.unknown()).describe('lid.* attributes'),
        status: z.enum(['unset', 'ok', 'error']),
        statusMessage: z.string().optional(),
      }),
    )
    .describe('the spans recorded so far, sorted by start'),
});
export type JobTrace = z.output<typeof JobTraceSchema>;

export const ImagesSchema = z.object({ images: z.array(z.string()) });

export const ErrorEnvelopeSchema = z.object({
  error: z.object({
    code: z.string().describe('stable code: invalid_spec, not_found, unauthorized, rate_limited, ...'),
    message: z.string().describe('what went wrong and what to do about it'),
    details: z
      .unknown()
      .describe('for invalid requests: [{path, message}], one per problem; otherwise facts about the error or null'),
  }),
});
export interface ErrorEnvelope {
  error: { code: ApiErrorCode; message: string; details: unknown };
}

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({
  status: z.enum(['ready', 'unready']),
  reasons: z.array(z.string()),
  workers: z.number().int().describe('workers that sent a heartbeat in the last 15 s'),
});

/** What each event of GET /v1/jobs/{id}/events carries as its data, by event name. */
export interface JobStreamPayloads {
  state: { state: JobRecord['state']; at: string };
  output: { stream: 'stdout' | 'stderr'; data: string; encoding: 'utf8' | 'base64' };
  final: JobRecord;
  /** The stream broke off on the gateway's side: reconnect with Last-Event-ID to resume. */
  error: ErrorEnvelope;
}
