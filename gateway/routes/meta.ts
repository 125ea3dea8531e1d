// The service's own endpoints: liveness (/healthz: the process answers), readiness (/readyz: Redis answers and a
// worker sent a heartbeat lately, so a submitted job will run), the images workers offer (/v1/images, behind the
// API key like all of /v1), and the API reference (/openapi.json, /docs).
import { Hono } from 'hono';
import { keys } from '../../common/keys.js';
import type { GatewayEnv, Services } from '../deps.js';
import { docsPage } from '../docs-page.js';
import { openApiDocument } from '../openapi.js';

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

export function metaRoutes(s: Services): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const { reasons, workers } = await readiness(s);
    return c.json({ status: reasons.length ? 'unready' : 'ready', reasons, workers }, reasons.length ? 503 : 200);
  });

  app.get('/v1/images', async (c) => c.json({ images: await s.images.list() }));

  app.get('/openapi.json', (c) => c.json(openApiDocument()));

  app.get('/docs', (c) => c.html(docsPage(openApiDocument())));

  return app;
}
