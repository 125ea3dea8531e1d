// Callback deliveries under the egress policy, through the real delivery queue on a private Redis: a receiver on
// 127.0.0.1 is refused under the default policy (no connection, no retry) and reached when the operator allows
// 127.0.0.0/8; 169.254.169.254 is refused by default and under "true", and only an explicit CIDR lets a delivery
// try it (the test's beforeConnect guard stops that attempt, so no packet leaves the machine); a receiver that
// answers with an endless body does not hold the delivery, whose answer Lid never reads.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy } from '../common/egress-policy.js';
import type { JobRecord } from '../common/job.js';
import { keys, QUEUES } from '../common/keys.js';
import type { ConnectTarget } from '../common/policed-fetch.js';
import { newTenantRecord, tenantRecordText } from '../common/tenant-record.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { Callbacks } from './callbacks.js';

const TENANT = 'hooked';
let server: TestRedis;
let redis: Redis;
let queue: Queue;
let n = 0;
let connects: ConnectTarget[] = [];

function guard(target: ConnectTarget): void {
  connects.push(target);
  if (!/^127\.\d+\.\d+\.\d+$/.test(target.address)) throw new Error(`test guard: not connecting to ${target.address}`);
}

interface Receiver {
  url: string;
  connections: number;
  bodies: string[];
  close(): Promise<void>;
}

/** A callback receiver on 127.0.0.1 that answers 204, or streams an endless body when `endless`. */
async function receiver(endless = false): Promise<Receiver & { cut: Promise<void> }> {
  const state = { connections: 0, bodies: [] as string[] };
  let cut!: () => void;
  const cutPromise = new Promise<void>((resolve) => (cut = resolve));
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      state.bodies.push(body);
      if (!endless) return res.writeHead(204).end();
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('x'.repeat(1024)), 5);
      res.on('close', () => {
        clearInterval(timer);
        cut();
      });
    });
  });
  srv.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`,
    get connections() {
      return state.connections;
    },
    bodies: state.bodies,
    cut: cutPromise,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

/** Sends one delivery with the given policy and waits until it completed or failed for good (or was tried once). */
async function deliver(allow: string | undefined, url: string, stopAfterFirstAttempt = false): Promise<Job> {
  connects = [];
  const id = `job-${++n}`;
  const callbacks = new Callbacks(
    redis,
    new Redis(server.url, { maxRetriesPerRequest: null }),
    pino({ level: 'silent' }),
    { policy: EgressPolicy.parse(allow), beforeConnect: guard },
    Buffer.alloc(32, 7), // the server signing key: these tests look at where deliveries go, not at signatures
  );
  try {
    await callbacks.send(url, { id, tenant: TENANT } as JobRecord);
    for (let i = 0; i < 200; i++) {
      const job = (await queue.getJob(`callback-${id}`))!;
      const state = await job.getState();
      if (state === 'completed' || state === 'failed' || (stopAfterFirstAttempt && job.attemptsMade >= 1)) return job;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`delivery ${id} did not settle`);
  } finally {
    await callbacks.close();
  }
}

beforeAll(async () => {
  server = await startTestRedis();
  redis = new Redis(server.url);
  await redis.set(keys.tenant(TENANT), tenantRecordText(newTenantRecord(TENANT, {}, 'no-key')));
  queue = new Queue(QUEUES.callbacks, { connection: redis, prefix: QUEUES.prefix });
});
afterAll(async () => {
  await queue?.close();
  redis?.disconnect();
  await server?.stop();
});

describe('callbacks under the egress policy', () => {
  it('refuses a receiver on 127.0.0.1 by default, for good and without connecting; delivers when allowed', async () => {
    const r = await receiver();
    try {
      const refused = await deliver(undefined, r.url);
      expect(await refused.getState()).toBe('failed');
      expect(refused.attemptsMade).toBe(1); // a refusal is final: no retries
      expect(refused.failedReason).toContain('Lid does not connect to 127.0.0.1, a loopback address');
      expect(r.connections).toBe(0);

      const delivered = await deliver('127.0.0.0/8', r.url);
      expect(await delivered.getState()).toBe('completed');
      expect(r.bodies).toHaveLength(1);
      expect(JSON.parse(r.bodies[0]!)).toMatchObject({ tenant: TENANT });
    } finally {
      await r.close();
    }
  });

  it('refuses 169.254.169.254 by default and under "true"; only an explicit CIDR lets it try', async () => {
    const url = 'http://169.254.169.254/latest/meta-data/';
    for (const allow of [undefined, 'true', '10.0.0.0/8,127.0.0.0/8']) {
      const refused = await deliver(allow, url);
      expect(await refused.getState(), String(allow)).toBe('failed');
      expect(refused.failedReason).toContain('169.254.169.254, a metadata address');
      expect(connects).toEqual([]);
    }
    // Control: allowed, the delivery goes for the address (and the guard stops it before any packet).
    const tried = await deliver('169.254.169.254/32', url, true);
    expect(connects.map((c) => c.address)).toEqual(['169.254.169.254']);
    expect(tried.failedReason).not.toContain('metadata address');
    await tried.remove(); // its retries would otherwise wait in the queue
  });

  it('never reads the answer: an endless body does not hold the delivery', async () => {
    const r = await receiver(true);
    try {
      const started = Date.now();
      const delivered = await deliver('127.0.0.0/8', r.url);
      expect(await delivered.getState()).toBe('completed');
      expect(Date.now() - started).toBeLessThan(5000); // the request's own timeout is 10 s
      await r.cut; // and Lid hung up on the stream
    } finally {
      await r.close();
    }
  });
});
