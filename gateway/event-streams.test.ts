// GET /v1/jobs/:id/events at scale, over real HTTP (startGateway on a free port) against a real Redis: a thousand
// open streams of one tenant cost Redis no more connections than one does, and all of them receive the job's
// events; and a tenant's streams are capped (LID_MAX_STREAMS_PER_TENANT), a stream over the cap getting 429.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { JobStore } from '../common/job-store.js';
import { newJobId } from '../common/job-submitter.js';
import { connectRedis } from '../common/redis.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { type RunningGateway, startGateway } from './server.js';
import { TenantStore } from './tenants.js';

let server: TestRedis;
let redis: Redis;
let tenants: TenantStore;
const gateways: RunningGateway[] = [];

beforeAll(async () => {
  server = await startTestRedis();
  redis = connectRedis(server.url, 'test');
  tenants = new TenantStore(redis);
});
afterAll(async () => {
  for (const g of gateways) await g.close();
  await redis?.quit();
  await server?.stop();
});

async function gatewayWith(maxStreams: number): Promise<RunningGateway> {
  const config = loadConfig({ LOG_LEVEL: 'silent', LID_MAX_STREAMS_PER_TENANT: String(maxStreams) });
  const gateway = await startGateway({ ...config, port: 0 }, { redisUrl: server.url });
  gateways.push(gateway);
  return gateway;
}

/** Every connection the server has, by name: the count that a thousand blocking readers used to blow up. */
async function clientCount(): Promise<number> {
  return ((await redis.client('LIST')) as string).trim().split('\n').length;
}

interface Follower {
  events: string[];
  ended: Promise<void>;
  /** Resolves once the stream has delivered `n` events. */
  got(n: number): Promise<void>;
  close(): void;
}

/** Opens one /events stream and records the names of the events it receives. */
async function follow(url: string, apiKey: string, id: string): Promise<Follower | Response> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/jobs/${id}/events`, {
    headers: { Authorization: `Bearer ${apiKey}` },
    signal: abort.signal,
  });
  if (res.status !== 200) return res;
  const events: string[] = [];
  const waiters: [number, () => void][] = [];
  const ended = (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += value;
        for (let end; (end = buffer.indexOf('\n\n')) >= 0; buffer = buffer.slice(end + 2)) {
          const name = /^event: ?(.*)$/m.exec(buffer.slice(0, end))?.[1];
          if (name) events.push(name);
        }
        for (const [n, wake] of waiters) if (events.length >= n) wake();
      }
    } catch {
      /* aborted by close() */
    }
  })();
  return {
    events,
    ended,
    got: (n) => (events.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push([n, resolve]))),
    close: () => abort.abort(),
  };
}

const isFollower = (f: Follower | Response): f is Follower => 'got' in f;

const queuedJob = async (tenant: string) => {
  const jobs = new JobStore(redis, 600);
  const id = newJobId();
  await jobs.create({
    id,
    tenant,
    image: 'busybox',
    state: 'queued',
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    queueMs: null,
    attempts: 0,
    traceId: null,
  });
  await jobs.emit(id, { type: 'state', state: 'queued', at: new Date().toISOString() });
  return { id, jobs };
};

it('holds 1,000 streams of one tenant on a handful of Redis connections and delivers the job to all of them', async () => {
  const gateway = await gatewayWith(2000);
  const { apiKey } = await tenants.create('crowd', { ratePerSec: 100_000 });
  const { id, jobs } = await queuedJob('crowd');
  const before = await clientCount();

  const followers: Follower[] = [];
  for (let batch = 0; batch < 10; batch++) {
    const opened = await Promise.all(Array.from({ length: 100 }, () => follow(gateway.url, apiKey, id)));
    for (const f of opened) {
      if (!isFollower(f)) throw new Error(`a stream was refused: ${f.status} ${await f.text()}`);
      followers.push(f);
    }
  }
  await Promise.all(followers.map((f) => f.got(1))); // each has the replayed `queued` and now waits
  const during = await clientCount();
  expect(followers).toHaveLength(1000);
  // Before the first stream the gateway had its connection; the streams added its one subscription at most.
  expect(during - before).toBeLessThanOrEqual(1);

  const started = Date.now();
  await jobs.emit(id, { type: 'output', stream: 'stdout', data: 'to all\n', encoding: 'utf8' });
  const record = (await jobs.update(id, (r) => ({ ...r, state: 'completed', finishedAt: new Date().toISOString() })))!;
  await jobs.emit(id, { type: 'final', record });
  await Promise.all(followers.map((f) => f.ended));
  const deliveredMs = Date.now() - started;
  for (const f of followers) expect(f.events).toEqual(['state', 'output', 'final']);
  console.log(
    `1000 streams: ${during - before} more Redis connection(s); the job's end reached all in ${deliveredMs} ms`,
  );
  expect(await clientCount()).toBeLessThanOrEqual(during);
}, 120_000);

it("caps a tenant's open streams: over the cap a 429 that says so; after one closes, a new one is accepted", async () => {
  const gateway = await gatewayWith(3);
  const { apiKey } = await tenants.create('capped', { ratePerSec: 100_000 });
  const { apiKey: otherKey } = await tenants.create('neighbour', { ratePerSec: 100_000 });
  const { id } = await queuedJob('capped');
  const { id: otherId } = await queuedJob('neighbour');

  const open: Follower[] = [];
  for (let i = 0; i < 3; i++) {
    const f = await follow(gateway.url, apiKey, id);
    if (!isFollower(f)) throw new Error(`stream ${i + 1} of 3 was refused: ${f.status}`);
    open.push(f);
  }
  const refused = (await follow(gateway.url, apiKey, id)) as Response;
  expect(refused.status).toBe(429);
  expect(refused.headers.get('retry-after')).toBe('5');
  const { error } = (await refused.json()) as { error: { code: string; message: string; details: unknown } };
  expect(error.code).toBe('rate_limited');
  expect(error.message).toMatch(/at most 3 event streams at once .*LID_MAX_STREAMS_PER_TENANT.* has 3 open/);
  expect(error.details).toMatchObject({ maxStreams: 3, open: 3 });

  // Another tenant is not held to this one's streams.
  const neighbour = await follow(gateway.url, otherKey, otherId);
  expect(isFollower(neighbour)).toBe(true);
  if (isFollower(neighbour)) neighbour.close();

  // Control: once one of the three closes, the same request is accepted.
  open.pop()!.close();
  let again: Follower | Response = refused;
  for (let i = 0; i < 50 && !isFollower(again); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    again = await follow(gateway.url, apiKey, id);
  }
  expect(isFollower(again)).toBe(true);
  for (const f of [...open, again]) if (isFollower(f)) f.close();
});
