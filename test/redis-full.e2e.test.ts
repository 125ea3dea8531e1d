// A full Redis, attacked end to end: a gateway (startGateway) and a real worker against a private Redis with a small
// maxmemory under noeviction, filled up while an accepted job runs. New submissions must get a 503 saying Redis is
// full (and leave nothing behind: no record, no reservation, no Idempotency-Key), neither process may crash, and the
// accepted job must survive in BullMQ and complete once memory is freed. Control: the same submission is accepted
// once there is room again.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import type { JobRecord } from '../common/job.js';
import { JobStore } from '../common/job-store.js';
import { keys, QUEUES } from '../common/keys.js';
import { connectRedis } from '../common/redis.js';
import { type RunningGateway, startGateway } from '../gateway/server.js';
import { TenantStore } from '../gateway/tenants.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { LidWorker } from '../worker/worker.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { describePrivileged } from './privileged.js';
import { keepRedisFull } from './redis-fill.js';
import { startTestRedis, type TestRedis } from './redis-server.js';

const IMAGE = 'busybox-full:1';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-full-'));
const dataDir = path.join(tmp, 'data');

describePrivileged('a full Redis (maxmemory, noeviction)', () => {
  let server: TestRedis;
  let redis: Redis;
  let gateway: RunningGateway;
  let worker: LidWorker;
  let apiKey: string;

  beforeAll(async () => {
    server = await startTestRedis({ maxmemory: '24mb' });
    await writeOciLayout(path.join(tmp, 'layout'), { layers: [busyboxLayer()], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), path.join(tmp, 'layout'));
    const config = loadConfig({
      REDIS_URL: server.url,
      LID_DATA_DIR: dataDir,
      LID_PORT: '0',
      LID_WORKER_METRICS_PORT: 'off',
      LID_WORKER_CONCURRENCY: '2',
      LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    worker = await LidWorker.start(config, { redisUrl: server.url, logger, lockDurationMs: 2000 });
    gateway = await startGateway(config, { redisUrl: server.url, logger });
    redis = connectRedis(server.url, 'test');
    ({ apiKey } = await new TenantStore(redis).create('full-tenant', { ratePerSec: 1000 }));
  });

  afterAll(async () => {
    await gateway?.close();
    await worker?.close();
    redis?.disconnect();
    await server?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const submit = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}/v1/jobs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const jobs = () => new JobStore(redis, 600);
  const until = async <T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000) => {
    for (const deadline = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 50))) {
      const v = await read();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    }
  };

  it('answers 503 "Redis is full" to new jobs, keeps the accepted one, and completes it once memory frees', async () => {
    // Accepted before Redis fills: it is running (its sandbox sleeping) while the memory runs out.
    const accepted = await submit({ image: IMAGE, command: ['sh', '-c', 'sleep 1.5; echo survived'] });
    expect(accepted.status).toBe(202);
    const { id } = (await accepted.json()) as JobRecord;
    await until(
      'the accepted job starts',
      () => jobs().get(id),
      (r) => r?.state === 'running',
    );

    const pressure = keepRedisFull(redis);
    await pressure.full;
    const queuedBefore = await redis.get(keys.tenantQueued('full-tenant'));
    const keysBefore = await redis.dbsize();
    const fillersBefore = pressure.written();
    const refused = await submit({ image: IMAGE, command: ['echo', 'later'] }, { 'Idempotency-Key': 'full-1' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    const { error } = (await refused.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/^Redis is full: /);
    // Nothing left behind: no record, no reservation, no key held (the filler's keys aside).
    expect(await redis.dbsize()).toBe(keysBefore + (pressure.written() - fillersBefore));
    await until(
      'the reservation is given back',
      () => redis.get(keys.tenantQueued('full-tenant')),
      (q) => q === queuedBefore,
    );
    expect(await redis.get(keys.idempotency('full-tenant', 'full-1'))).toBeNull();

    // The accepted job ends its run while Redis is full: its result cannot be stored yet, and nothing is lost.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200); // the gateway lives
    expect((await jobs().get(id))?.state).toBe('running');
    const queue = new Queue(QUEUES.jobs, { connection: redis, prefix: QUEUES.prefix });
    try {
      expect(await queue.getJob(id)).toBeDefined(); // still in BullMQ

      // Room again: the job's result is stored, and new work is accepted (the control for the 503 above).
      await pressure.stop();
      const done = await until(
        'the accepted job completes',
        () => jobs().get(id),
        (r) => r?.state === 'completed',
      );
      expect(done!.result).toMatchObject({ status: 'ok', stdout: 'survived\n' });
      expect(done!.attempts).toBe(1); // stored when room came back, not run a second time
      const again = await submit({ image: IMAGE, command: ['echo', 'later'] }, { 'Idempotency-Key': 'full-1' });
      expect(again.status).toBe(202);
      const { id: later } = (await again.json()) as JobRecord;
      const ran = await until(
        'the later job completes',
        () => jobs().get(later),
        (r) => r?.state === 'completed',
      );
      expect(ran!.result?.stdout).toBe('later\n');
    } finally {
      await queue.close();
    }
  }, 90_000);
});
