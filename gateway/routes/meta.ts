// The service's own endpoints: liveness (/healthz: the process answers), readiness (/readyz: Redis answers and a
// worker sent a heartbeat lately, so a submitted job will run), and the images workers offer (/v1/images, behind
// the API key like all of /v1). The API reference (/openapi.json, /docs) is routes/reference.ts.
import { createRoute } from '@hono/zod-openapi';
import { keys } from '../../common/keys.js';
import { HealthSchema, ImagesSchema, ReadySchema } from '../../common/http-api.js';
import type { Services } from '../deps.js';
import { errorResponses, jsonResponse, openApiApp } from '../openapi-app.js';

/** A worker counts as present if it sent a heartbeat within this window (it sends one every few seconds). */
const WORKER_FRESH_MS = 15_000;
const PING_TIMEOUT_MS = 1000;

/** Rejects after ms: the shared connection queues commands while Redis is away, so a PING could wait forever. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Readiness {
  reasons: string[];
  workers: number;
}

async function readiness(s: Services): Promise<Readiness> {
  const unready = (reason: string): Readiness => ({ reasons: [reason], workers: 0 });
  if (s.redis.status !== 'ready') return unready(`redis is not reachable (connection ${s.redis.status})`);
  let workers: number;
  try {
    await within(s.redis.ping(), PING_TIMEOUT_MS, 'redis');
    // The gateway's clock judges the workers' heartbeats: nodes are expected to run NTP (skew << 15 s).
    const since = Date.now() - WORKER_FRESH_MS;
    workers = await within(s.redis.zcount(keys.workers, since, '+inf'), PING_TIMEOUT_MS, 'redis');
  } catch (e) {
    return unready(`redis is not reachable: ${(e as Error).message}`);
  }
  return workers
    ? { reasons: [], workers }
    : unready('no worker sent a heartbeat in the last 15 s: start `lid worker`');
}

const health = createRoute({
  method: 'get',
  path: '/healthz',
  security: [],
  summary: 'The gateway is up',
  responses: { 200: jsonResponse(HealthSchema, 'up') },
});

const ready = createRoute({
  method: 'get',
  path: '/readyz',
  security: [],
  summary: 'Redis is reachable and a worker is present',
  responses: {
    200: jsonResponse(ReadySchema, 'ready'),
    503: jsonResponse(ReadySchema, 'not ready: reasons says why'),
  },
});

const images = createRoute({
  method: 'get',
  path: '/v1/images',
  summary: 'Images the workers offer',
  responses: { 200: jsonResponse(ImagesSchema, 'sorted names'), ...errorResponses(401) },
});

export function metaRoutes(s: Services) {
  const app = openApiApp();

  app.openapi(health, (c) => c.json({ status: 'ok' as const }, 200));

  app.openapi(ready, async (c) => {
    const { reasons, workers } = await readiness(s);
    if (reasons.length) return c.json({ status: 'unready' as const, reasons, workers }, 503);
    return c.json({ status: 'ready' as const, reasons, workers }, 200);
  });

  app.openapi(images, async (c) => c.json({ images: await s.images.list() }, 200));

  return app;
}
