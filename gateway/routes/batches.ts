// /v1/batches: submit up to 1000 jobs at once (all checked first: one bad spec is a 400 naming jobs.<i>.<field>
// and nothing is queued), and read a batch back: counts by state over all its jobs, and its jobs' records a page
// at a time. Like jobs, another tenant's batch answers 404. Each route is declared once (createRoute): its schemas
// validate the request and make /openapi.json.
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { BatchCreatedSchema, BatchRequestSchema, BatchViewSchema, PageQuerySchema } from '../../common/http-api.js';
import { type BatchRecord, countByState } from '../../common/batch-store.js';
import type { JobRecord } from '../../common/job.js';
import { isRedisFull } from '../../common/redis.js';
import { ApiError } from '../api-error.js';
import { BATCH_ID, newBatchId } from '../api-schemas.js';
import type { Services } from '../deps.js';
import { traceparent } from '../headers.js';
import { checkCallbackUrl, checkJobs } from '../job-checks.js';
import {
  bodyRoute,
  errorResponses,
  jsonResponse,
  openApiApp,
  submissionErrors,
  submissionRequest,
} from '../openapi-app.js';
import { Submission } from '../submission.js';

const submitBatch = createRoute({
  method: 'post',
  path: '/',
  summary: 'Submit a batch of up to 1000 jobs',
  description: 'All jobs are checked first: one bad spec is a 400 naming jobs.<i>.<field> and none is queued.',
  request: submissionRequest(BatchRequestSchema),
  responses: { 202: jsonResponse(BatchCreatedSchema, 'the jobs are queued'), ...submissionErrors() },
});

const getBatch = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'Read a batch: counts by state and a page of its jobs',
  // Any string: an id that is not a batch id is a 404 like any other unknown batch, not a 400.
  request: { params: z.object({ id: z.string().describe('batch id') }), query: PageQuerySchema },
  responses: { 200: jsonResponse(BatchViewSchema, 'the batch'), ...errorResponses(400, 401, 404) },
});

export function batchRoutes(s: Services) {
  const app = openApiApp();

  bodyRoute(app, submitBatch, 'batch', async (c) => {
    const key = c.req.valid('header')['Idempotency-Key'];
    const tenant = c.get('tenant');
    const body = c.req.valid('json');
    checkCallbackUrl(s, body.callbackUrl, 'callbackUrl');
    const requests = await checkJobs(s, tenant, body.jobs, (i) => `jobs.${i}.`);
    const submission = await Submission.reserve(s, tenant, requests, traceparent(c));
    const id = newBatchId();
    let batch: BatchRecord;
    try {
      if (key) {
        const holder = await s.jobs.claimIdempotencyKey(tenant.name, key, id, 'batch');
        if (holder !== id) {
          await submission.abandon();
          const earlier = await s.batches.get(holder);
          if (!earlier) throw new ApiError('conflict', `a batch with Idempotency-Key "${key}" is still in progress`);
          return c.json({ id: earlier.id, total: earlier.jobIds.length }, 202);
        }
      }
      batch = {
        id,
        tenant: tenant.name,
        jobIds: submission.ids,
        createdAt: new Date().toISOString(),
        callbackUrl: body.callbackUrl ?? null,
      };
      // The batch exists before its jobs are queued: the worker ending the last one looks it up for the callback.
      await s.batches.create(batch);
      await submission.commit(id);
    } catch (e) {
      await submission.abandon().catch(() => {});
      // A full Redis left no job behind (see Submission): the key must not point at this batch for the retry.
      if (key && isRedisFull(e)) await s.jobs.releaseIdempotencyKey(tenant.name, key, id, 'batch').catch(() => {});
      throw e;
    }
    s.logger.info({ batchId: id, tenant: tenant.name, jobs: batch.jobIds.length }, 'batch submitted');
    c.header('Location', `/v1/batches/${id}`);
    return c.json({ id, total: batch.jobIds.length }, 202);
  });

  app.openapi(getBatch, async (c) => {
    const { id } = c.req.valid('param');
    const batch = BATCH_ID.test(id) ? await s.batches.get(id) : null;
    if (!batch || batch.tenant !== c.get('tenant').name) throw new ApiError('not_found', `no batch ${id}`);
    const { cursor, limit } = c.req.valid('query');
    // Counts need every record; a batch holds at most 1000, read concurrently on one connection.
    const records = await Promise.all(batch.jobIds.map((jobId) => s.jobs.get(jobId)));
    const counts = countByState(records);
    const end = cursor + limit;
    return c.json(
      {
        id: batch.id,
        total: batch.jobIds.length,
        createdAt: batch.createdAt,
        callbackUrl: batch.callbackUrl,
        counts,
        jobs: records.slice(cursor, end).filter((r): r is JobRecord => r !== null),
        nextCursor: end < batch.jobIds.length ? String(end) : null,
      },
      200,
    );
  });

  return app;
}
