// The HTTP API's own schemas, beside the job contract of common/job.ts: batch requests, query and path parameters
// (these validate requests), and the shapes of responses (these only document them). All are registered in
// `apiSchemas` under the names /openapi.json gives them, so the document is generated from what validates.
import crypto from 'node:crypto';
import { z } from 'zod';
import { JOB_STATES, type JobRecord, JobRequestSchema, MAX_BATCH } from '../common/job.js';
import { RUN_STATUSES } from '../common/run-spec.js';
import { API_EXAMPLES } from './api-examples.js';

/** Job ids come from common/job-submitter.ts newJobId: `job_` + 20 base64url characters. */
export const JOB_ID = /^job_[A-Za-z0-9_-]{20}$/;
export const BATCH_ID = /^bat_[A-Za-z0-9_-]{20}$/;
export const newBatchId = () => `bat_${crypto.randomBytes(15).toString('base64url')}`;

export const BatchRequestSchema = z.strictObject({
  jobs: z
    .array(JobRequestSchema)
    .min(1, 'a batch needs at least one job')
    .max(MAX_BATCH, `a batch holds at most ${MAX_BATCH} jobs`),
  callbackUrl: z.url({ protocol: /^https?$/ }).optional(),
});

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
});
// Fails the typecheck when common/job.ts changes the record without this documentation following.
const _recordMatchesSchema = (r: JobRecord): z.input<typeof JobRecordSchema> => r;

export const BatchCreatedSchema = z.object({ id: z.string(), total: z.number().int() });

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

export const HealthSchema = z.object({ status: z.literal('ok') });
export const ReadySchema = z.object({
  status: z.enum(['ready', 'unready']),
  reasons: z.array(z.string()),
  workers: z.number().int().describe('workers that sent a heartbeat in the last 15 s'),
});

/** Every schema /openapi.json names, under its component name. */
export const apiSchemas = z.registry<{ id: string; examples?: unknown[] }>();
apiSchemas.add(JobRequestSchema, { id: 'JobRequest', examples: [API_EXAMPLES.jobRequest] });
apiSchemas.add(JobRecordSchema, { id: 'JobRecord', examples: [API_EXAMPLES.jobRecord] });
apiSchemas.add(BatchRequestSchema, { id: 'BatchRequest', examples: [API_EXAMPLES.batchRequest] });
apiSchemas.add(BatchCreatedSchema, { id: 'BatchCreated' });
apiSchemas.add(BatchViewSchema, { id: 'Batch' });
apiSchemas.add(ImagesSchema, { id: 'Images', examples: [{ images: ['python:latest', 'node:latest'] }] });
apiSchemas.add(ErrorEnvelopeSchema, { id: 'Error', examples: [API_EXAMPLES.error] });
apiSchemas.add(HealthSchema, { id: 'Health' });
apiSchemas.add(ReadySchema, { id: 'Ready' });
