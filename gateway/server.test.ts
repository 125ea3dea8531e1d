// startGateway as a real HTTP server on a free port, with its own Redis connections: it reports its real URL, serves
// SSE streams without a Redis connection per stream, and closes (idempotently) even while a stream is still open.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { connectRedis } from '../common/redis.js';
import { connectionsNamed } from '../test/gateway-harness.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { type RunningGateway, startGateway } from './server.js';
import { TenantStore } from './tenants.js';

let server: TestRedis;
let redis: Redis;
let gateway: RunningGateway;
let auth: Record<string, string>;
beforeAll(async () => {
  server = await startTestRedis();
  redis = connectRedis(server.url, 'test');
  const { apiKey } = await new TenantStore(redis).create('acme');
  auth = { Authorization: `Bearer ${apiKey}` };
  // port 0 (any free port) directly: LID_PORT itself accepts only 1..65535 today.
  gateway = await startGateway({ ...loadConfig({ LOG_LEVEL: 'silent' }), port: 0 }, { redisUrl: server.url });
});
afterAll(async () => {
  await gateway?.close();
  await redis?.quit();
  await server?.stop();
});

const settle = async (check: () => Promise<boolean>) => {
  for (let i = 0; i < 100 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
};

it('listens on a free port and serves the API', async () => {
  expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(gateway.url).not.toMatch(/:0$/);
  expect(await (await fetch(`${gateway.url}/healthz`)).json()).toEqual({ status: 'ok' });
  const res = await fetch(`${gateway.url}/v1/jobs`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: '{"image": "busybox", "command": ["true"]}',
  });
  expect(res.status).toBe(202);
});

it('serves an SSE stream on its shared connections: none opens for it, none is left when it ends', async () => {
  const submitted = await fetch(`${gateway.url}/v1/jobs`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ image: 'busybox' }),
  });
  const { id } = (await submitted.json()) as { id: string };
  const connections = async () =>
    (await connectionsNamed(redis, 'gateway')) + (await connectionsNamed(redis, 'gateway-notifier'));
  const client = new AbortController();
  const res = await fetch(`${gateway.url}/v1/jobs/${id}/events`, { headers: auth, signal: client.signal });
  const reader = res.body!.getReader();
  await reader.read(); // the replayed `queued` event
  await settle(async () => (await connectionsNamed(redis, 'gateway-notifier')) === 1);
  const whileOpen = await connections();
  expect(whileOpen).toBe(2); // the gateway's connection and its one subscription
  client.abort();
  const again = await fetch(`${gateway.url}/v1/jobs/${id}/events`, { headers: auth });
  const second = again.body!.getReader();
  await second.read();
  expect(await connections()).toBe(whileOpen); // a second stream costs nothing either
  await second.cancel();
});

it('serves /metrics to a client on this machine (loopback), with no token set', async () => {
  const res = await fetch(`${gateway.url}/metrics`);
  expect(res.status).toBe(200);
  expect(await res.text()).toContain('# TYPE lid_jobs_submitted_total counter');
});

it('closes with a stream still open, once however often it is asked', async () => {
  const { id } = (await (
    await fetch(`${gateway.url}/v1/jobs`, { method: 'POST', headers: auth, body: '{"image": "busybox"}' })
  ).json()) as { id: string };
  const res = await fetch(`${gateway.url}/v1/jobs/${id}/events`, { headers: auth });
  await res.body!.getReader().read();
  const started = Date.now();
  await Promise.all([gateway.close(), gateway.close()]);
  expect(Date.now() - started).toBeLessThan(5000);
  await expect(fetch(`${gateway.url}/healthz`)).rejects.toThrow();
  const open = async () =>
    (await connectionsNamed(redis, 'gateway')) + (await connectionsNamed(redis, 'gateway-notifier'));
  await settle(async () => (await open()) === 0);
  expect(await open()).toBe(0);
});
