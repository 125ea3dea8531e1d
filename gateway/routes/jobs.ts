// /v1/jobs: submit a job (optionally waiting for it to end), read its record and its trace, follow its events over
// SSE, cancel it. A tenant sees only its own jobs: another tenant's id answers 404, exactly as an id that does not
// exist. Each route is declared once (createRoute): its schemas validate the request and make /openapi.json.
import { trace } from '@opentelemetry/api';
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { JobRecordSchema, type JobTrace, JobTraceSchema, WaitQuerySchema } from '../../common/http-api.js';
import { type JobRecord, JobRequestSchema } from '../../common/job.js';
import { isRedisFull } from '../../common/redis.js';
import { ATTR } from '../../common/telemetry.js';
import { readTrace } from '../../common/trace-store.js';
import { ApiError } from '../api-error.js';
import { JOB_ID } from '../api-schemas.js';
import type { GatewayEnv, Services } from '../deps.js';
import { traceparent } from '../headers.js';
import { isFinal, waitForFinal } from '../job-events.js';
import { checkJobs } from '../job-checks.js';
import {
  bodyRoute,
  errorResponses,
  jsonResponse,
  openApiApp,
  submissionErrors,
  submissionRequest,
} from '../openapi-app.js';
import { Submission } from '../submission.js';
import { sendEvents } from '../sse.js';

// Any string: an id that is not a job id is a 404 like any other unknown job, not a 400.
const JobIdParams = z.object({ id: z.string().describe('job id') });

const submitJob = createRoute({
  method: 'post',
  path: '/',
  summary: 'Submit a job',
  description: 'Queues a job. With ?wait=N, answers 200 with the finished record if the job ends within N seconds.',
  request: { query: WaitQuerySchema, ...submissionRequest(JobRequestSchema) },
  responses: {
    200: jsonResponse(JobRecordSchema, 'the job ended within ?wait'),
    202: jsonResponse(JobRecordSchema, 'the job is queued (or still running at the end of ?wait)'),
    ...submissionErrors(),
  },
});

const getJob = createRoute({
  method: 'get',
  path: '/{id}',
  summary: "Read a job's record",
  request: { params: JobIdParams },
  responses: { 200: jsonResponse(JobRecordSchema, 'the record'), ...errorResponses(401, 404) },
});

const cancelJob = createRoute({
  method: 'delete',
  path: '/{id}',
  summary: 'Cancel a job',
  description: 'A queued job is cancelled at once (200); a running one is killed within a second (202).',
  request: { params: JobIdParams },
  responses: {
    200: jsonResponse(JobRecordSchema, 'cancelled before it started'),
    202: jsonResponse(JobRecordSchema, 'running: the worker kills it and records it cancelled'),
    ...errorResponses(401, 404, 409),
  },
});

const followEvents = createRoute({
  method: 'get',
  path: '/{id}/events',
  summary: "Follow a job's events (Server-Sent Events)",
  description:
    'Events `state` {state, at}, `output` {stream, data, encoding} as they happen, then `final` with the ' +
    'record, and the stream closes. Send Last-Event-ID to resume after an event.',
  request: {
    params: JobIdParams,
    headers: z.object({
      'Last-Event-ID': z.string().optional().describe('the id of the last event received: resume after it'),
    }),
  },
  responses: {
    200: { description: 'an event stream', content: { 'text/event-stream': { schema: z.string() } } },
    ...errorResponses(401, 404),
  },
});

const getTrace = createRoute({
  method: 'get',
  path: '/{id}/trace',
  summary: "Read a job's trace: its spans from the gateway and the worker",
  description:
    'Spans {name, spanId, parentSpanId, start, durationMs, attributes (lid.*), status} sorted by start, with ' +
    'no tracing backend needed. A span whose parent is not listed continues the client traceparent.',
  request: { params: JobIdParams },
  responses: {
    200: jsonResponse(JobTraceSchema, 'the trace id (null when the job has none) and the spans recorded so far'),
    ...errorResponses(401, 404),
  },
});

/** The caller's own job named in the path, or 404. */
export async function ownJob(s: Services, c: Context<GatewayEnv>): Promise<JobRecord> {
  const id = c.req.param('id') ?? '';
  const record = JOB_ID.test(id) ? await s.jobs.get(id) : null;
  if (!record || record.tenant !== c.get('tenant').name) throw new ApiError('not_found', `no job ${id}`);
  return record;
}

export function jobRoutes(s: Services) {
  const app = openApiApp();

  bodyRoute(app, submitJob, 'job', async (c) => {
    const { wait } = c.req.valid('query');
    const key = c.req.valid('header')['Idempotency-Key'];
    const tenant = c.get('tenant');
    const [request] = await checkJobs(s, tenant, [c.req.valid('json')], () => '');
    const submission = await Submission.reserve(s, tenant, [request!], traceparent(c));
    const id = submission.ids[0]!;
    let record: JobRecord | undefined;
    try {
      if (key) {
        // Claimed after the reservation, so that a job refused for its quota leaves the key free for the retry.
        const holder = await s.jobs.claimIdempotencyKey(tenant.name, key, id);
        if (holder !== id) {
          await submission.abandon();
          record = await earlierJob(s, holder, key);
        }
      }
      if (!record) {
        record = (await submission.commit())[0]!;
        s.logger.info(
          { jobId: record.id, tenant: tenant.name, traceId: record.traceId, image: record.image },
          'job submitted',
        );
      }
    } catch (e) {
      await submission.abandon().catch(() => {});
      // A full Redis left no job behind (see Submission): the key must not point at one for the retry.
      if (key && isRedisFull(e)) await s.jobs.releaseIdempotencyKey(tenant.name, key, id).catch(() => {});
      throw e;
    }
    trace.getActiveSpan()?.setAttribute(ATTR.jobId, record.id); // the request span joins the job's timeline
    if (wait && !isFinal(record)) {
      await waitForFinal(s, record.id, Date.now() + wait * 1000, c.req.raw.signal);
      record = (await s.jobs.get(record.id)) ?? record;
    }
    c.header('Location', `/v1/jobs/${record.id}`);
    return c.json(record, isFinal(record) ? 200 : 202);
  });

  app.openapi(getJob, async (c) => c.json(await ownJob(s, c), 200));

  app.openapi(cancelJob, async (c) => {
    const record = await ownJob(s, c);
    if (isFinal(record)) {
      throw new ApiError('conflict', `job ${record.id} is already ${record.state}: there is nothing to cancel`, {
        state: record.state,
      });
    }
    if (record.state === 'queued' && (await removeFromQueue(s, record.id))) {
      return c.json(await cancelQueued(s, record), 200);
    }
    // Running, or just taken by a worker: the worker kills it and records `cancelled`.
    await s.jobs.requestCancel(record.id);
    s.logger.info({ jobId: record.id, tenant: record.tenant, traceId: record.traceId }, 'cancel requested');
    return c.json((await s.jobs.get(record.id)) ?? record, 202);
  });

  app.openapi(followEvents, async (c) => {
    const record = await ownJob(s, c);
    const lastEventId = c.req.valid('header')['Last-Event-ID'];
    const from = lastEventId && /^\d+-\d+$/.test(lastEventId) ? lastEventId : '0';
    const release = s.streams.take(record.tenant); // 429 beyond LID_MAX_STREAMS_PER_TENANT
    try {
      return streamSSE(c, async (stream) => {
        try {
          await sendEvents(s, stream, record, from, c.req.raw.signal);
        } finally {
          release();
        }
      });
    } catch (e) {
      release();
      throw e;
    }
  });

  // The job's spans as the gateway and the workers recorded them; spans still being written appear moments later.
  app.openapi(getTrace, async (c) => {
    const record = await ownJob(s, c);
    const spans: JobTrace['spans'] = record.traceId ? await readTrace(s.redis, record.traceId, record.id) : [];
    return c.json({ jobId: record.id, traceId: record.traceId, spans }, 200);
  });

  return app;
}

/** The job an Idempotency-Key already names. Its record may be moments from existing (a concurrent retry). */
async function earlierJob(s: Services, id: string, key: string): Promise<JobRecord> {
  for (let i = 0; i < 40; i++) {
    const record = await s.jobs.get(id);
    if (record) return record;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new ApiError('conflict', `a submission with Idempotency-Key "${key}" is still in progress: retry shortly`);
}

/** True when the job was taken off the queue; false when a worker holds it (or it is not on the queue yet). */
async function removeFromQueue(s: Services, id: string): Promise<boolean> {
  const job = await s.queue.getJob(id);
  if (!job) return false;
  try {
    await job.remove();
    return true;
  } catch {
    return false; // locked: a worker took it a moment ago
  }
}

async function cancelQueued(s: Services, record: JobRecord): Promise<JobRecord> {
  const at = new Date().toISOString();
  const cancelled = await s.jobs.update(record.id, (r) =>
    r.state === 'queued' ? { ...r, state: 'cancelled', finishedAt: at } : null,
  );
  await s.quota.leftQueue(record.tenant, record.id);
  if (cancelled?.state === 'cancelled') {
    await s.jobs.emit(record.id, { type: 'state', state: 'cancelled', at });
    await s.jobs.emit(record.id, { type: 'final', record: cancelled });
  }
  s.logger.info({ jobId: record.id, tenant: record.tenant, traceId: record.traceId }, 'queued job cancelled');
  return cancelled ?? record;
}
