// The HTTP API against a real Redis, through app.request: authentication, submission (the job really is on the
// BullMQ queue with its payload and priority), idempotency, tenant isolation, quotas and ceilings, and the public
// endpoints (health, readiness, OpenAPI, docs). Bad input has its own file (bad-input.test.ts).
import { Queue } from 'bullmq';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys, QUEUES } from '../common/keys.js';
import { fairPriority } from '../common/job-submitter.js';
import { connectRedis } from '../common/redis.js';
import {
  call,
  expectError,
  type GatewayHarness,
  startGatewayHarness,
  type TestTenant,
} from '../test/gateway-harness.js';
import { createApp } from './app.js';
import type { GatewayEnv } from './deps.js';

let h: GatewayHarness;
let app: Hono<GatewayEnv>;
let queue: Queue;
let acme: TestTenant;

beforeAll(async () => {
  h = await startGatewayHarness();
  ({ app, queue } = h.gateway());
  acme = await h.tenant();
});
afterAll(() => h?.close());

const job = { image: 'busybox', command: ['echo', 'hi'] };
const submit = (tenant: TestTenant, body: unknown = job, headers: Record<string, string> = {}, query = '') =>
  call(app, 'POST', `/v1/jobs${query}`, { tenant, body, headers });

describe('authentication', () => {
  it('refuses a missing, malformed, unknown or revoked key with 401 and WWW-Authenticate', async () => {
    const revoked = await h.tenant();
    await h.tenants.revoke(revoked.name);
    const cases: Record<string, string>[] = [
      {},
      { Authorization: 'Basic dXNlcjpwYXNz' },
      { Authorization: `Bearer lid_${'A'.repeat(43)}` },
      { Authorization: 'Bearer not-even-a-key' },
      revoked.headers,
    ];
    for (const headers of cases) {
      const reply = await call(app, 'GET', '/v1/images', { headers });
      expect(reply.status).toBe(401);
      expect(reply.body).toMatchObject({ error: { code: 'unauthorized', details: null } });
      expect(reply.headers.get('WWW-Authenticate')).toMatch(/^Bearer realm="lid"/);
    }
    expect((await call(app, 'GET', '/v1/images', { tenant: acme })).status).toBe(200);
  });
});

describe('submitting a job', () => {
  it('answers 202 with the record and puts the job on the queue with its payload and fair priority', async () => {
    const t = await h.tenant();
    const reply = await submit(t, { ...job, env: { A: '1' }, metadata: { ticket: '7' } });
    expect(reply.status).toBe(202);
    const record = reply.body;
    expect(record).toEqual({
      id: expect.stringMatching(/^job_[A-Za-z0-9_-]{20}$/),
      tenant: t.name,
      image: 'busybox',
      state: 'queued',
      createdAt: expect.any(String),
      startedAt: null,
      finishedAt: null,
      queueMs: null,
      attempts: 0,
      traceId: null,
      metadata: { ticket: '7' },
      network: 'none',
    });
    expect(reply.headers.get('Location')).toBe(`/v1/jobs/${record.id}`);
    expect(await h.jobs.get(record.id)).toEqual(record);

    const queued = await queue.getJob(record.id);
    expect(queued?.data).toEqual({
      id: record.id,
      tenant: t.name,
      createdAt: record.createdAt,
      request: expect.objectContaining({ image: 'busybox', command: ['echo', 'hi'], env: { A: '1' }, files: [] }),
    });
    expect(queued?.opts).toMatchObject({ priority: fairPriority(1), attempts: 3 });
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('1');
    expect((await call(app, 'GET', `/v1/jobs/${record.id}`, { tenant: t })).body).toEqual(record);
  });

  it('returns the same job for a retried submission with the same Idempotency-Key', async () => {
    const t = await h.tenant();
    const key = { 'Idempotency-Key': 'order-1234' };
    const first = await submit(t, job, key);
    const again = await submit(t, job, key);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('1');
    const other = await h.tenant(); // keys are per tenant
    expect((await submit(other, job, key)).body.id).not.toBe(first.body.id);
    expectError(await submit(t, job, { 'Idempotency-Key': 'has:colon' }), 400, 'invalid_spec');
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('1'); // a refused request reserves nothing
  });

  it('answers 503 when the queue is unavailable, marks the record error and counts nothing', async () => {
    const { hostname, port } = new URL(h.server.url);
    const broken = new Queue('broken', { connection: { host: hostname, port: Number(port) }, prefix: QUEUES.prefix });
    await broken.close();
    const t = await h.tenant();
    const reply = await call(h.gateway(broken).app, 'POST', '/v1/jobs', { tenant: t, body: job });
    expectError(reply, 503, 'setup_failed');
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('0');
    const ids = (await h.redis.keys(keys.job('job_*'))).filter((k) => k.split(':').length === 3).map((k) => k.slice(8));
    const records = (await Promise.all(ids.map((id) => h.jobs.get(id)))).filter((r) => r?.tenant === t.name);
    expect(records).toEqual([
      expect.objectContaining({ state: 'error', error: expect.objectContaining({ code: 'setup_failed' }) }),
    ]);
    const events = await h.jobs.readEvents(records[0]!.id, '0', 1);
    expect(events.map((e) => e.event.type)).toEqual(['state', 'final']);
  });

  it("answers 404 for another tenant's job, exactly as for a job that does not exist", async () => {
    const owner = await h.tenant();
    const { id } = (await submit(owner)).body;
    for (const [method, path] of [
      ['GET', `/v1/jobs/${id}`],
      ['GET', `/v1/jobs/${id}/events`],
      ['DELETE', `/v1/jobs/${id}`],
      ['GET', '/v1/jobs/job_AAAAAAAAAAAAAAAAAAAA'],
      ['GET', '/v1/jobs/nonsense'],
    ] as const) {
      expectError(await call(app, method, path, { tenant: acme }), 404, 'not_found');
    }
  });
});

describe('quotas and ceilings', () => {
  it('answers 429 with Retry-After over the rate', async () => {
    const t = await h.tenant({ ratePerSec: 2 });
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await call(app, 'GET', '/v1/images', { tenant: t }));
    expect(replies.slice(0, 2).map((r) => r.status)).toEqual([200, 200]);
    const limited = replies[3]!;
    expectError(limited, 429, 'rate_limited');
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
  });

  it('answers 429 over max queued and counts nothing for a refused job', async () => {
    const t = await h.tenant({ maxQueued: 2 });
    expect((await submit(t)).status).toBe(202);
    expect((await submit(t)).status).toBe(202);
    const refused = await submit(t);
    expectError(refused, 429, 'queue_full');
    expect(refused.body.error.details).toMatchObject({ maxQueued: 2, queued: 2 });
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('2');
  });

  it("answers 400 naming the field for limits above the tenant's ceiling, and caps defaults to it", async () => {
    const t = await h.tenant({ maxTimeoutMs: 60_000, maxMemoryBytes: 128 * 1024 * 1024 });
    const over = await submit(t, { ...job, limits: { timeoutMs: 120_000 } });
    expectError(over, 400, 'invalid_spec', 'limits.timeoutMs');
    expect(over.body.error.message).toBe("limits.timeoutMs 120000 is above this tenant's ceiling of 60000");
    const defaults = await submit(t);
    const queued = await queue.getJob(defaults.body.id);
    // The default memory (256 MiB) is above this tenant's 128 MiB: the job gets the ceiling instead.
    expect(queued?.data.request.limits).toEqual({ memoryBytes: 128 * 1024 * 1024 });
  });
});

describe('public endpoints', () => {
  it('reports health, and readiness only with a fresh worker heartbeat', async () => {
    expect((await call(app, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const unready = await call(app, 'GET', '/readyz');
    expect(unready.status).toBe(503);
    expect(unready.body).toMatchObject({ status: 'unready', reasons: [expect.stringMatching(/no worker/)] });
    await h.redis.zadd(keys.workers, Date.now() - 60_000, 'stale-worker');
    expect((await call(app, 'GET', '/readyz')).status).toBe(503);
    await h.redis.zadd(keys.workers, Date.now(), 'worker-1');
    expect(await call(app, 'GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ready', workers: 1 } });
    await h.redis.del(keys.workers);
  });

  it('is not ready while Redis is unreachable, and says so at once', async () => {
    const down = connectRedis('redis://127.0.0.1:1', 'test-down');
    down.on('error', () => {});
    try {
      const { queue: q } = h.gateway();
      const unreachable = createApp({ ...h, redis: down, blockingRedis: () => down, queue: q });
      const reply = await call(unreachable, 'GET', '/readyz');
      expect(reply).toMatchObject({
        status: 503,
        body: { reasons: [expect.stringMatching(/redis is not reachable/)] },
      });
    } finally {
      down.disconnect();
    }
  });

  it('serves an OpenAPI 3.1 document generated from the schemas, and an HTML reference', async () => {
    const { status, body: doc } = await call(app, 'GET', '/openapi.json');
    expect(status).toBe(200);
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/batches', '/v1/batches/{id}']),
    );
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const request = doc.components.schemas.JobRequest;
    expect(request.additionalProperties).toBe(false);
    expect(request.properties.limits.properties.timeoutMs).toMatchObject({ type: 'integer', maximum: 86_400_000 });
    expect(doc.components.schemas.BatchRequest.properties.jobs.items).toEqual({
      $ref: '#/components/schemas/JobRequest',
    });
    expect(doc.paths['/v1/jobs'].post.parameters).toContainEqual(
      expect.objectContaining({ name: 'wait', in: 'query' }),
    );

    const docs = await app.request('/docs');
    expect(docs.headers.get('content-type')).toMatch(/text\/html/);
    const html = await docs.text();
    for (const path of ['/v1/jobs', '/v1/jobs/{id}/events', '/v1/batches/{id}', '/openapi.json'])
      expect(html).toContain(path);
    expect(html).not.toMatch(/<script src=|https?:\/\/cdn/);
  });
});
