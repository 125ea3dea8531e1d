// The gateway under test: a private redis-server, the stores over it, and apps built by createApp with no server
// (requests go through app.request). Each app gets a queue of its own name, so tests that read or consume the
// queue see only their own jobs.
import crypto from 'node:crypto';
import { Queue } from 'bullmq';
import type { Hono } from 'hono';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { type LidConfig, loadConfig } from '../common/config.js';
import { JobStore } from '../common/job-store.js';
import { connectionName, QUEUES } from '../common/keys.js';
import { connectRedis } from '../common/redis.js';
import { createApp } from '../gateway/app.js';
import { JobNotifier } from '../gateway/job-notifier.js';
import type { GatewayDeps, GatewayEnv } from '../gateway/deps.js';
import type { TenantSettings } from '../common/tenant-record.js';
import { TenantStore } from '../gateway/tenants.js';
import { startTestRedis, type TestRedis } from './redis-server.js';

/** The connection name of what blockingRedis makes (the notifier's subscription), to count them in CLIENT LIST. */
export const EVENTS_CONNECTION = 'test-events';

export interface TestTenant {
  name: string;
  apiKey: string;
  headers: Record<string, string>;
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read fields freely
}

export interface GatewayHarness {
  server: TestRedis;
  redis: Redis;
  config: LidConfig;
  jobs: JobStore;
  tenants: TenantStore;
  /** An app with a fresh queue, or with the queue given; `extra` overrides other deps (a StreamCap, say). */
  gateway(queue?: Queue, extra?: Partial<GatewayDeps>): { app: Hono<GatewayEnv>; queue: Queue; notifier: JobNotifier };
  tenant(settings?: Partial<TenantSettings>): Promise<TestTenant>;
  close(): Promise<void>;
}

export async function startGatewayHarness(): Promise<GatewayHarness> {
  const server = await startTestRedis();
  const config = loadConfig({ REDIS_URL: server.url, LOG_LEVEL: 'silent', LID_RESULT_TTL: '600' });
  const redis = connectRedis(server.url, 'test');
  const jobs = new JobStore(redis, config.resultTtlSeconds);
  const tenants = new TenantStore(redis);
  const queues: Queue[] = [];
  const notifiers: JobNotifier[] = [];
  let n = 0;
  return {
    server,
    redis,
    config,
    jobs,
    tenants,
    gateway(given, extra = {}) {
      const queue =
        given ??
        new Queue(`jobs-${crypto.randomBytes(4).toString('hex')}`, { connection: redis, prefix: QUEUES.prefix });
      if (!given) queues.push(queue);
      const blockingRedis = () => connectRedis(server.url, EVENTS_CONNECTION);
      // ?wait and /events share one subscription per gateway, on a connection named apart.
      const notifier = new JobNotifier(() => connectRedis(server.url, 'test-notifier'));
      notifiers.push(notifier);
      const app = createApp({ redis, blockingRedis, queue, jobs, tenants, config, notifier, ...extra });
      return { app, queue, notifier };
    },
    async tenant(settings = {}) {
      const name = `t${++n}-${crypto.randomBytes(3).toString('hex')}`;
      // A generous rate by default: only the rate-limit tests want to hit it.
      const { apiKey } = await tenants.create(name, { ratePerSec: 100_000, ...settings });
      return { name, apiKey, headers: { Authorization: `Bearer ${apiKey}` } };
    },
    async close() {
      for (const n of notifiers) n.close();
      await Promise.all(queues.map((q) => q.close()));
      await redis.quit();
      await server.stop();
    },
  };
}

/** One request through app.request; the body is parsed as JSON when it is JSON. */
export async function call(
  app: Hono<GatewayEnv>,
  method: string,
  path: string,
  opts: {
    tenant?: TestTenant;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    /** The client address the app sees, as @hono/node-server would report it (none by default). */
    remote?: string;
  } = {},
): Promise<Reply> {
  const init = {
    method,
    headers: { ...(opts.tenant?.headers ?? {}), 'Content-Type': 'application/json', ...(opts.headers ?? {}) },
    body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  };
  const env = opts.remote === undefined ? undefined : { incoming: { socket: { remoteAddress: opts.remote } } };
  const res = await app.request(path, init, env);
  const text = await res.text();
  let body: unknown = text;
  if (res.headers.get('content-type')?.includes('application/json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body };
}

/** Open connections named for `name` (connectRedis names them connectionName(purpose)). */
export async function connectionsNamed(redis: Redis, name: string): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${connectionName(name)} `)).length;
}

/** An error reply as the API promises it: the status, the envelope, and (when given) a problem at `path`. */
export function expectError(reply: Reply, status: number, code: string, path?: string) {
  expect(reply.status, JSON.stringify(reply.body)).toBe(status);
  expect(reply.body.error).toMatchObject({ code, message: expect.any(String) });
  expect(Object.keys(reply.body.error).sort()).toEqual(['code', 'details', 'message']);
  if (path !== undefined) expect(reply.body.error.details).toContainEqual(expect.objectContaining({ path }));
}
