// GET /metrics and /dashboard's access rules through app.request against a real Redis: the Prometheus text names
// every lid_ metric with its type, submissions and (simulated, as `lid up`'s in-process worker would record them)
// job ends move the counters; /metrics answers only loopback clients unless LID_METRICS_TOKEN (then it asks for the
// token) or LID_METRICS_PUBLIC opens it; and the dashboard is off without LID_ADMIN_TOKEN, refuses a missing or
// wrong token, and trades ?token= for a cookie.
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { keys, QUEUES } from '../common/keys.js';
import { createMetrics, type LidMetrics } from '../common/metrics.js';
import { connectRedis } from '../common/redis.js';
import {
  call,
  expectError,
  type GatewayHarness,
  startGatewayHarness,
  type TestTenant,
} from '../test/gateway-harness.js';
import { createApp } from './app.js';
import { isLoopback, metricsAccess } from './routes/metrics.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const SCRAPE = 'scrape-token-for-tests-012345';

let h: GatewayHarness;
let queue: Queue;
let acme: TestTenant;

beforeAll(async () => {
  h = await startGatewayHarness();
  queue = new Queue(`metrics-${process.pid}`, { connection: h.redis, prefix: QUEUES.prefix });
  acme = await h.tenant();
});
afterAll(async () => {
  await queue?.close();
  await h?.close();
});

/** An app over the harness's stores, with its own registry and extra configuration. */
function appWith(env: Record<string, string> = {}, metrics: LidMetrics = createMetrics()) {
  const config = loadConfig({ REDIS_URL: h.server.url, LOG_LEVEL: 'silent', ...env });
  const blockingRedis = () => connectRedis(h.server.url, 'test-events');
  const app = createApp({ redis: h.redis, blockingRedis, queue, jobs: h.jobs, tenants: h.tenants, config, metrics });
  return { app, metrics };
}

/** The value of one sample line, e.g. sample(text, 'lid_jobs_total{state="completed",...}'). */
function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

describe('GET /metrics', () => {
  it('answers Prometheus text naming every lid_ metric with its type', async () => {
    const { app } = appWith();
    const res = await call(app, 'GET', '/metrics', { remote: '127.0.0.1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const types = {
      lid_jobs_submitted_total: 'counter',
      lid_jobs_total: 'counter',
      lid_job_queue_wait_seconds: 'histogram',
      lid_job_setup_seconds: 'histogram',
      lid_job_run_seconds: 'histogram',
      lid_job_end_to_end_seconds: 'histogram',
      lid_jobs_running: 'gauge',
      lid_worker_capacity: 'gauge',
      lid_worker_free_slots: 'gauge',
      lid_image_cache_hits_total: 'counter',
      lid_image_cache_misses_total: 'counter',
      lid_image_bytes: 'gauge',
      lid_redis_errors_total: 'counter',
      lid_process_cpu_seconds_total: 'counter',
    };
    for (const [name, type] of Object.entries(types)) expect(res.body).toContain(`# TYPE ${name} ${type}\n`);
  });

  it('counts submissions per tenant and the job ends recorded in the shared registry', async () => {
    const { app, metrics } = appWith();
    await h.redis.sadd(keys.images, 'busybox:latest');
    for (let i = 0; i < 2; i++) {
      const r = await call(app, 'POST', '/v1/jobs', { tenant: acme, body: { image: 'busybox', command: ['true'] } });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
    }
    // What the worker records at a job's end (worker/job-metrics.ts), in the same process as under `lid up`.
    const labels = { state: 'completed', status: 'ok', tenant: acme.name, image: 'busybox' };
    metrics.jobsEnded.inc(labels);
    metrics.endToEnd.observe({ image: 'busybox' }, 0.02);
    const text = (await call(app, 'GET', '/metrics', { remote: '127.0.0.1' })).body as string;
    expect(sample(text, `lid_jobs_submitted_total{tenant="${acme.name}"}`)).toBe(2);
    expect(sample(text, `lid_jobs_total{state="completed",status="ok",tenant="${acme.name}",image="busybox"}`)).toBe(1);
    expect(sample(text, 'lid_job_end_to_end_seconds_count{image="busybox"}')).toBe(1);
    expect(sample(text, 'lid_job_end_to_end_seconds_bucket{le="0.025",image="busybox"}')).toBe(1);
  });

  it('asks for LID_METRICS_TOKEN when it is set, from any address, loopback included', async () => {
    const { app } = appWith({ LID_METRICS_TOKEN: SCRAPE });
    for (const remote of ['127.0.0.1', '203.0.113.7']) {
      expect((await call(app, 'GET', '/metrics', { remote })).status).toBe(401);
      const wrong = { remote, headers: { Authorization: 'Bearer wrong' } };
      expect((await call(app, 'GET', '/metrics', wrong)).status).toBe(401);
      const ok = await call(app, 'GET', '/metrics', { remote, headers: { Authorization: `Bearer ${SCRAPE}` } });
      expect(ok.status).toBe(200);
    }
  });

  it('refuses a client from another address without a token (control: the same request from loopback)', async () => {
    const { app } = appWith();
    const refused = await call(app, 'GET', '/metrics', { remote: '203.0.113.7' });
    expectError(refused, 403, 'forbidden');
    expect(refused.body.error.message).toMatch(/LID_METRICS_TOKEN.*LID_METRICS_PUBLIC=true/);
    expect((await call(app, 'GET', '/metrics', { remote: '::ffff:10.1.2.3' })).status).toBe(403);
    expect((await call(app, 'GET', '/metrics')).status).toBe(403); // no address known: not loopback
    expect((await call(app, 'GET', '/metrics', { remote: '127.0.0.1' })).status).toBe(200);
    expect((await call(app, 'GET', '/metrics', { remote: '::1' })).status).toBe(200);
    // LID_METRICS_PUBLIC=true opens it to all.
    const open = appWith({ LID_METRICS_PUBLIC: 'true' }).app;
    expect((await call(open, 'GET', '/metrics', { remote: '203.0.113.7' })).status).toBe(200);
  });
});

describe('metricsAccess (the rule, as a function of the address)', () => {
  const loopback = ['127.0.0.1', '127.255.3.4', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.1.2.3'];
  const others = ['10.0.0.5', '192.168.1.2', '8.8.8.8', '0.0.0.0', '::', '::ffff:10.0.0.1', 'fe80::1', '2001:db8::1'];
  const unknown = [undefined, '', 'localhost', '127.0.0.1.evil', '1::1'];

  it('lets loopback clients in and keeps every other address out', () => {
    for (const a of loopback) {
      expect(isLoopback(a), a).toBe(true);
      expect(metricsAccess(a, undefined, { public: false }), a).toBe('allowed');
    }
    for (const a of [...others, ...unknown]) {
      expect(isLoopback(a), String(a)).toBe(false);
      expect(metricsAccess(a, undefined, { public: false }), String(a)).toBe('local_only');
      expect(metricsAccess(a, undefined, { public: true }), String(a)).toBe('allowed');
    }
  });

  it('with a token, asks every address for it', () => {
    for (const a of [...loopback, ...others]) {
      expect(metricsAccess(a, undefined, { token: SCRAPE, public: true })).toBe('needs_token');
      expect(metricsAccess(a, `Bearer ${SCRAPE}`, { token: SCRAPE, public: false })).toBe('allowed');
    }
  });
});

describe('/dashboard access', () => {
  it('is off (404, saying how to turn it on) without LID_ADMIN_TOKEN', async () => {
    const { app } = appWith();
    const res = await call(app, 'GET', '/dashboard');
    expect(res.status).toBe(404);
    expect(res.body.error.message).toMatch(/LID_ADMIN_TOKEN/);
    expect((await call(app, 'GET', '/dashboard?token=anything-at-all-123')).status).toBe(404);
  });

  it('refuses a missing or wrong token, a tenant key included', async () => {
    const { app } = appWith({ LID_ADMIN_TOKEN: ADMIN });
    expect((await call(app, 'GET', '/dashboard')).status).toBe(401);
    expect((await call(app, 'GET', '/dashboard/api/overview')).status).toBe(401);
    expect((await call(app, 'GET', '/dashboard/api/overview', { tenant: acme })).status).toBe(401);
    expect((await call(app, 'GET', '/dashboard?token=wrong')).status).toBe(401);
    const forged = { Cookie: `lid_admin=${ADMIN}` }; // the cookie holds a hash of the token, not the token
    expect((await call(app, 'GET', '/dashboard/api/overview', { headers: forged })).status).toBe(401);
  });

  it('trades ?token= for an HttpOnly cookie, redirects without the token, then serves page and data', async () => {
    const { app } = appWith({ LID_ADMIN_TOKEN: ADMIN });
    const signIn = await app.request(`/dashboard?token=${ADMIN}`);
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get('location')).toBe('/dashboard');
    const setCookie = signIn.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^lid_admin=[0-9a-f]{64}; .*HttpOnly/);
    expect(setCookie).toContain('SameSite=Strict');
    const cookie = { Cookie: setCookie.split(';')[0]! };
    const page = await call(app, 'GET', '/dashboard', { headers: cookie });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'nonce-/);
    expect(page.body).toContain('Lid dashboard');
    const overview = await call(app, 'GET', '/dashboard/api/overview', { headers: cookie });
    expect(overview.status).toBe(200);
    expect(overview.body).toMatchObject({ queue: { counts: expect.any(Object) }, workers: [], recent: [] });
    const bearer = { Authorization: `Bearer ${ADMIN}` };
    expect((await call(app, 'GET', '/dashboard/api/overview', { headers: bearer })).status).toBe(200);
    expect(
      (await call(app, 'GET', '/dashboard/api/jobs/job_xxxxxxxxxxxxxxxxxxxx/trace', { headers: bearer })).status,
    ).toBe(404);
  });
});
