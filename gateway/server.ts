// The gateway as a running server: @hono/node-server serving createApp on config.port (0 picks a free port; the
// URL reports the real one). Without deps it opens its own Redis connections to the URL its caller gives (the CLI
// decides which Redis: cli/local/redis-url.ts) and closes them on close(); deps given by the caller stay the
// caller's. close() is idempotent: one memoised promise running an ordered list of cleanups, each in its own
// try/catch so one failure does not skip the rest.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Queue } from 'bullmq';
import type { LidConfig } from '../common/config.js';
import { JobStore } from '../common/job-store.js';
import { QUEUES } from '../common/keys.js';
import { createLogger } from '../common/logger.js';
import { createMetrics } from '../common/metrics.js';
import { LidError } from '../common/errors.js';
import { connectRedis } from '../common/redis.js';
import { createApp } from './app.js';
import type { GatewayDeps } from './deps.js';
import { JobNotifier } from './job-notifier.js';
import { TenantStore } from './tenants.js';

/** Streams (SSE, ?wait) still open this long after close() starts are cut; clients reconnect elsewhere. */
const DRAIN_MS = 2000;
const KEEP_ALIVE_MS = 65_000;

export interface RunningGateway {
  url: string;
  close(): Promise<void>;
}

export interface GatewayOptions extends Partial<GatewayDeps> {
  /** The Redis to connect to; needed unless both `redis` and `blockingRedis` are given. */
  redisUrl?: string;
}

export async function startGateway(config: LidConfig, opts: GatewayOptions): Promise<RunningGateway> {
  const { redisUrl: url, ...deps } = opts;
  if (!url && !(deps.redis && deps.blockingRedis))
    throw new LidError('internal', 'startGateway needs a Redis URL, or both redis and blockingRedis');
  const logger = deps.logger ?? createLogger(config, 'gateway');
  const metrics = deps.metrics ?? createMetrics();
  const open = (purpose: string) => {
    const connection = connectRedis(url!, purpose);
    connection.on('error', (err) => logger.warn({ err, purpose }, 'redis connection error'));
    connection.on('error', () => metrics.redisErrors.inc({ component: purpose }));
    return connection;
  };
  const redis = deps.redis ?? open('gateway');
  const queue = deps.queue ?? new Queue(QUEUES.jobs, { connection: redis, prefix: QUEUES.prefix });
  // One subscription for the whole process: ?wait and every /events stream share it.
  const notifier = deps.notifier ?? new JobNotifier(deps.blockingRedis ?? (() => open('gateway-notifier')));
  const app = createApp({
    notifier,
    redis,
    blockingRedis: deps.blockingRedis ?? (() => open('gateway-notifier')),
    queue,
    jobs: deps.jobs ?? new JobStore(redis, config.resultTtlSeconds),
    tenants: deps.tenants ?? new TenantStore(redis),
    config,
    logger,
    metrics,
  });

  const server = await new Promise<ServerType>((resolve, reject) => {
    const listening = serve({ fetch: app.fetch, port: config.port }, () => resolve(listening));
    listening.once('error', reject);
  });
  // Idle keep-alive connections live longer than a client's or a load balancer's own idle timeout (60 s is the
  // common one): then it is always the client that closes an idle connection, and it never sends a request on a
  // connection the gateway closed at the same moment (seen as "other side closed" with Node's default of 5 s).
  (server as Server).keepAliveTimeout = KEEP_ALIVE_MS;
  (server as Server).headersTimeout = KEEP_ALIVE_MS + 1000;
  const { port } = server.address() as AddressInfo;
  logger.info({ port }, 'gateway listening');

  // In order: stop taking requests, then close what this function opened (the queue uses the connection).
  const cleanups: [string, () => Promise<unknown>][] = [['http server', () => stopServer(server)]];
  if (!deps.notifier) cleanups.push(['notifier', async () => notifier.close()]);
  if (!deps.queue) cleanups.push(['queue', () => queue.close()]);
  if (!deps.redis) cleanups.push(['redis', () => redis.quit()]);

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      (closing ??= (async () => {
        for (const [what, cleanup] of cleanups) {
          try {
            await cleanup();
          } catch (err) {
            logger.warn({ err }, `closing the gateway: ${what} failed`);
          }
        }
      })()),
  };
}

/** Lets requests in flight finish; idle keep-alive connections close now, streams still open after DRAIN_MS are cut. */
function stopServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    const http = server as Server;
    const cut = setTimeout(() => http.closeAllConnections(), DRAIN_MS);
    server.close(() => {
      clearTimeout(cut);
      resolve();
    });
    http.closeIdleConnections();
  });
}
