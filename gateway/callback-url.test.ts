// A callbackUrl whose host is a literal address (or localhost) that the egress policy refuses is a 400 naming the
// field, for a job, a job in a batch and a batch's own callback; names pass (they are checked at delivery, after
// DNS). The control is a gateway whose configuration allows 127.0.0.0/8, where the same requests are accepted.
import { Queue } from 'bullmq';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy } from '../common/egress-policy.js';
import { QUEUES } from '../common/keys.js';
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
import { JobNotifier } from './job-notifier.js';

let h: GatewayHarness;
let app: Hono<GatewayEnv>;
let allowing: Hono<GatewayEnv>;
let tenant: TestTenant;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  h = await startGatewayHarness();
  ({ app } = h.gateway());
  // The same gateway, configured with LID_ALLOW_PRIVATE_EGRESS=127.0.0.0/8.
  const queue = new Queue('jobs-callback-allowed', { connection: h.redis, prefix: QUEUES.prefix });
  const finals = new JobNotifier(() => connectRedis(h.server.url, 'test-finals'));
  closers.push(
    () => queue.close(),
    () => finals.close(),
  );
  allowing = createApp({
    redis: h.redis,
    blockingRedis: () => connectRedis(h.server.url, 'test-events'),
    queue,
    jobs: h.jobs,
    tenants: h.tenants,
    config: { ...h.config, egress: EgressPolicy.parse('127.0.0.0/8') },
    notifier: finals,
  });
  tenant = await h.tenant();
});
afterAll(async () => {
  for (const close of closers) await close();
  await h?.close();
});

const job = { image: 'busybox', command: ['true'] };

describe('callbackUrl at an address Lid will not call', () => {
  const refused = [
    ['http://127.0.0.1:9000/hook', 'Lid does not connect to 127.0.0.1, a loopback address'],
    ['http://localhost:9000/hook', 'Lid does not connect to localhost (127.0.0.1), a loopback address'],
    ['http://[::ffff:127.0.0.1]/hook', 'a loopback address'],
    ['http://169.254.169.254/latest/meta-data/', 'Lid does not connect to 169.254.169.254, a metadata address'],
    ['https://10.0.0.7/hook', 'a private address'],
  ];

  it('is a 400 naming callbackUrl, for a job', async () => {
    for (const [url, text] of refused) {
      const reply = await call(app, 'POST', '/v1/jobs', { tenant, body: { ...job, callbackUrl: url } });
      expectError(reply, 400, 'invalid_spec', 'callbackUrl');
      expect(reply.body.error.message, url).toContain(text);
      expect(reply.body.error.message).toContain('LID_ALLOW_PRIVATE_EGRESS');
    }
  });

  it("is a 400 naming jobs.<i>.callbackUrl, or the batch's callbackUrl", async () => {
    const inJob = await call(app, 'POST', '/v1/batches', {
      tenant,
      body: { jobs: [job, { ...job, callbackUrl: 'http://127.0.0.1/x' }] },
    });
    expectError(inJob, 400, 'invalid_spec', 'jobs.1.callbackUrl');
    const batch = await call(app, 'POST', '/v1/batches', {
      tenant,
      body: { jobs: [job], callbackUrl: 'http://169.254.169.254/' },
    });
    expectError(batch, 400, 'invalid_spec', 'callbackUrl');
  });

  it('accepts names (checked at delivery) and public addresses', async () => {
    for (const url of ['https://hooks.example.com/lid', 'http://93.184.216.34/hook']) {
      const reply = await call(app, 'POST', '/v1/jobs', { tenant, body: { ...job, callbackUrl: url } });
      expect(reply.status, url).toBe(202);
    }
  });

  it('accepts loopback when the operator allows it, and still refuses what the list does not cover', async () => {
    for (const url of ['http://127.0.0.1:9000/hook', 'http://localhost:9000/hook']) {
      const reply = await call(allowing, 'POST', '/v1/jobs', { tenant, body: { ...job, callbackUrl: url } });
      expect(reply.status, url).toBe(202);
    }
    const batch = await call(allowing, 'POST', '/v1/batches', {
      tenant,
      body: { jobs: [job], callbackUrl: 'http://127.0.0.1:9000/batch' },
    });
    expect(batch.status).toBe(202);
    const metadata = await call(allowing, 'POST', '/v1/jobs', {
      tenant,
      body: { ...job, callbackUrl: 'http://169.254.169.254/' },
    });
    expectError(metadata, 400, 'invalid_spec', 'callbackUrl');
    expect(metadata.body.error.message).toContain('public addresses and 127.0.0.0/8');
  });
});
