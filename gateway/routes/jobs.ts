// /v1/jobs: submit a job (optionally waiting for it to end), read its record and its trace, follow its events over
// SSE, cancel it. A tenant sees only its own jobs: another tenant's id answers 404, exactly as an id that does not
// exist.
import { trace } from '@opentelemetry/api';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { type JobRecord, JobRequestSchema } from '../../common/job.js';
import { isRedisFull } from '../../common/redis.js';
import { ATTR } from '../../common/telemetry.js';
import { readTrace } from '../../common/trace-store.js';
import { ApiError } from '../api-error.js';
import { JOB_ID, WaitQuerySchema } from '../api-schemas.js';
import type { GatewayEnv, Services } from '../deps.js';
import { idempotencyKey, traceparent } from '../headers.js';
import { isFinal, waitForFinal } from '../job-events.js';
import { checkJobs } from '../job-checks.js';
import { parseQuery, parseWith, readJson } from '../parse.js';
import { Submission } from '../submission.js';
import { sendEvents } from '../sse.js';

/** The caller's own job named in the path, or 404. */
export async function ownJob(s: Services, c: Context<GatewayEnv>): Promise<JobRecord> {
  const id = c.req.param('id') ?? '';
  const record = JOB_ID.test(id) ? await s.jobs.get(id) : null;
  if (!record || record.tenant !== c.get('tenant').name) throw new ApiError('not_found', `no job ${id}`);
  return record;
}

export function jobRoutes(s: Services): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.post('/', async (c) => {
    const { wait } = parseQuery(c, WaitQuerySchema);
    const key = idempotencyKey(c);
    const tenant = c.get('tenant');
    const [request] = await checkJobs(s, tenant, [parseWith(JobRequestSchema, await readJson(c), 'job')], () => '');
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

  app.get('/:id', async (c) => c.json(await ownJob(s, c)));

  // The job's spans as the gateway and the workers recorded them; spans still being written appear moments later.
  app.get('/:id/trace', async (c) => {
    const record = await ownJob(s, c);
    const spans = record.traceId ? await readTrace(s.redis, record.traceId, record.id) : [];
    return c.json({ jobId: record.id, traceId: record.traceId, spans });
  });

  app.get('/:id/events', async (c) => {
    const record = await ownJob(s, c);
    const lastEventId = c.req.header('Last-Event-ID');
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

  app.delete('/:id', async (c) => {
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
