// The claim script against a real Redis, with jobs put on the queue by the queue client and taken with BullMQ's own
// lock (Worker.getNextJob), as a worker takes them: each outcome (claimed, over_limit, skip, cancelled, refused,
// lost) with what it writes and what it must leave alone, two workers claiming at once, the round trips, and a full
// Redis, where a claim writes nothing and succeeds once memory frees.
import crypto from 'node:crypto';
import { Worker } from 'bullmq';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JobRecord, type QueuedJob, QueuedJobSchema } from '../common/job.js';
import { JobStore } from '../common/job-store.js';
import { CHANNELS, keys, QUEUES } from '../common/keys.js';
import { LidQueueClient } from '../common/queue-client.js';
import { connectRedis, isRedisFull, retryWhileRedisFull } from '../common/redis.js';
import { newTenantRecord, tenantRecordText } from '../common/tenant-record.js';
import { keepRedisFull } from '../test/redis-fill.js';
import { monitorRedis } from '../test/redis-monitor.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { type HeldEntry, JobClaims } from './claim.js';
import { LEASE_MS } from './tenant-slots.js';

const TTL = 600;
const IMAGE = 'busybox:1';

/** Redis, a producer, and a BullMQ worker that only takes jobs (no processor): the lock is BullMQ's own. */
async function setUp(server: TestRedis) {
  const redis = connectRedis(server.url, 'test');
  const client = new LidQueueClient(server.url, TTL);
  const takerConnection = connectRedis(server.url, 'test-taker');
  const claimsConnection = connectRedis(server.url, 'test-claims');
  const taker = new Worker(QUEUES.jobs, null, {
    connection: takerConnection,
    prefix: QUEUES.prefix,
    lockDuration: 60_000,
  });
  /** Submits a job and takes it off the queue, holding BullMQ's lock with a token of its own. */
  const submitAndTake = async (tenant: string, metadata?: Record<string, string>) => {
    const { id } = await client.submit(tenant, { image: IMAGE, command: ['true'], ...(metadata ? { metadata } : {}) });
    const token = crypto.randomUUID();
    const entry = await taker.getNextJob(token);
    expect(entry?.id).toBe(id); // one job at a time on this queue: the one just submitted
    const job: QueuedJob = QueuedJobSchema.parse(entry!.data);
    return { job, entry: { id: entry!.id!, token } satisfies HeldEntry };
  };
  return {
    redis,
    client,
    claims: new JobClaims(claimsConnection, TTL),
    submitAndTake,
    close: async () => {
      await taker.close();
      await client.close();
      for (const c of [redis, takerConnection, claimsConnection]) c.disconnect();
    },
  };
}

type Fixture = Awaited<ReturnType<typeof setUp>>;

/** Everything a claim may write for a job and its tenant, to compare before and after. */
async function written(redis: Redis, job: QueuedJob) {
  return {
    record: await redis.get(keys.job(job.id)),
    events: (await redis.xrange(keys.jobEvents(job.id), '-', '+')).map(([, f]) => JSON.parse(f[1]!)),
    dequeued: await redis.get(keys.jobDequeued(job.id)),
    queued: await redis.get(keys.tenantQueued(job.tenant)),
    slots: await redis.zrange(keys.tenantRunning(job.tenant), 0, -1),
    running: await redis.sismember(keys.running, job.id),
  };
}

describe('claiming a job', () => {
  let server: TestRedis;
  let f: Fixture;
  let claims: JobClaims;
  let other: Redis;

  beforeAll(async () => {
    server = await startTestRedis();
    f = await setUp(server);
    ({ claims } = f);
    other = connectRedis(server.url, 'test-claims-2');
  });
  afterAll(async () => {
    other?.disconnect();
    await f?.close();
    await server?.stop();
  });

  it('claims a queued job: its tenant slot, the dequeued count, the running set, the record and its event', async () => {
    const metadata = { note: 'a/b "quoted" ünïcödé' }; // cjson writes "/" as "\/" and passes UTF-8 through
    const { job, entry } = await f.submitAndTake('tenant-a', metadata);
    const before = JSON.parse((await f.redis.get(keys.job(job.id)))!) as JobRecord;
    const t = Date.now();
    const claim = await claims.claim(job, entry);
    expect(claim.outcome).toBe('claimed');
    const record = (claim as { record: JobRecord }).record;
    const startedAt = Date.parse(record.startedAt!);
    expect(startedAt).toBeGreaterThanOrEqual(t);
    expect(record).toEqual({
      ...before,
      state: 'running',
      startedAt: record.startedAt,
      queueMs: startedAt - Date.parse(before.createdAt),
      attempts: 1,
    });
    const stored = await written(f.redis, job);
    // The stored record is the one returned, its fields in the order JavaScript writes them.
    expect(JSON.parse(stored.record!)).toEqual(record);
    expect(Object.keys(JSON.parse(stored.record!))).toEqual(Object.keys(before));
    expect(await f.redis.ttl(keys.job(job.id))).toBe(-1); // no TTL while it runs
    expect(stored.events).toEqual([
      { type: 'state', state: 'queued', at: before.createdAt },
      { type: 'state', state: 'running', at: record.startedAt },
    ]);
    expect(stored).toMatchObject({ dequeued: '1', queued: '0', slots: [job.id], running: 1 });
    const lease = Number(await f.redis.zscore(keys.tenantRunning(job.tenant), job.id));
    expect(lease - startedAt).toBe(LEASE_MS);
  });

  it("reads the record's createdAt as JavaScript does, whatever the date (queueMs)", async () => {
    const { job, entry } = await f.submitAndTake('tenant-dates');
    const jobs = new JobStore(f.redis, TTL);
    await fc.assert(
      fc.asyncProperty(
        fc.date({ min: new Date('1970-01-01'), max: new Date('2199-12-31'), noInvalidDate: true }),
        async (created) => {
          await jobs.update(job.id, (r) => ({ ...r, createdAt: created.toISOString() }));
          const claim = await claims.claim(job, entry); // the same holder again: a retry on this worker
          const record = (claim as { record: JobRecord }).record;
          expect(record.queueMs).toBe(Date.parse(record.startedAt!) - created.getTime());
        },
      ),
      { numRuns: 200 },
    );
  });

  it("puts a job over its tenant's concurrency back untouched; an expired slot frees itself", async () => {
    await f.redis.set(keys.tenant('solo'), tenantRecordText(newTenantRecord('solo', { concurrency: 1 }, 'no-key')));
    const first = await f.submitAndTake('solo');
    expect((await claims.claim(first.job, first.entry)).outcome).toBe('claimed');
    const second = await f.submitAndTake('solo');
    const before = await written(f.redis, second.job);
    expect(await claims.claim(second.job, second.entry)).toEqual({ outcome: 'over_limit' });
    expect(await written(f.redis, second.job)).toEqual(before); // still queued, still counted, no slot
    expect(before).toMatchObject({ dequeued: null, queued: '1', slots: [first.job.id], running: 0 });
    // The first job's worker died: its lease runs out, and the slot is free without anyone releasing it.
    await f.redis.zadd(keys.tenantRunning('solo'), Date.now() - 1, first.job.id);
    expect((await claims.claim(second.job, second.entry)).outcome).toBe('claimed');
    expect(await f.redis.zrange(keys.tenantRunning('solo'), 0, -1)).toEqual([second.job.id]);
  });

  it('gives a tenant without a record the default concurrency (4)', async () => {
    const taken = [];
    for (let i = 0; i < 5; i++) taken.push(await f.submitAndTake('unrecorded'));
    const outcomes = [];
    for (const { job, entry } of taken) outcomes.push((await claims.claim(job, entry)).outcome);
    expect(outcomes).toEqual(['claimed', 'claimed', 'claimed', 'claimed', 'over_limit']);
  });

  it('skips a job whose record is already final, or gone, and counts it out of the queue once', async () => {
    const jobs = new JobStore(f.redis, TTL);
    const done = await f.submitAndTake('tenant-s');
    await jobs.update(done.job.id, (r) => ({ ...r, state: 'completed', finishedAt: new Date().toISOString() }));
    const before = await written(f.redis, done.job);
    expect(await claims.claim(done.job, done.entry)).toEqual({ outcome: 'skip' });
    expect(await written(f.redis, done.job)).toEqual({ ...before, dequeued: '1', queued: '0' });
    expect(await claims.claim(done.job, done.entry)).toEqual({ outcome: 'skip' });
    expect(await f.redis.get(keys.tenantQueued('tenant-s'))).toBe('0'); // not counted out twice

    const gone = await f.submitAndTake('tenant-s');
    await f.redis.del(keys.job(gone.job.id));
    expect(await claims.claim(gone.job, gone.entry)).toEqual({ outcome: 'skip' });
    expect(await written(f.redis, gone.job)).toMatchObject({ record: null, slots: [], running: 0, queued: '0' });
  });

  it('ends a job cancelled before it started: final record and event, never running, no slot', async () => {
    const { job, entry } = await f.submitAndTake('tenant-c');
    const before = JSON.parse((await f.redis.get(keys.job(job.id)))!) as JobRecord;
    const finals: string[] = [];
    const subscriber = connectRedis(server.url, 'test-finals');
    await subscriber.subscribe(CHANNELS.final);
    subscriber.on('message', (_channel: string, id: string) => finals.push(id));
    try {
      await f.client.cancel(job.id);
      const claim = await claims.claim(job, entry);
      expect(claim.outcome).toBe('cancelled');
      const record = (claim as { record: JobRecord }).record;
      expect(record).toEqual({ ...before, state: 'cancelled', finishedAt: record.finishedAt });
      const stored = await written(f.redis, job);
      expect(JSON.parse(stored.record!)).toEqual(record);
      expect(stored.events).toEqual([{ type: 'state', state: 'queued', at: before.createdAt }, { type: 'final' }]);
      expect(stored).toMatchObject({ dequeued: '1', queued: '0', slots: [], running: 0 });
      expect(await f.redis.ttl(keys.job(job.id))).toBeGreaterThan(TTL - 5);
      expect(await f.redis.ttl(keys.jobEvents(job.id))).toBeGreaterThan(TTL - 5);
      for (let i = 0; i < 40 && !finals.length; i++) await new Promise((r) => setTimeout(r, 25));
      expect(finals).toEqual([job.id]); // the gateway's ?wait and /events hear of it
      // A reader of the events (JobStore) gets the final record in place of the mark.
      const events = await new JobStore(f.redis, TTL).readEvents(job.id, '0');
      expect(events.at(-1)?.event).toEqual({ type: 'final', record });
    } finally {
      subscriber.disconnect();
    }
  });

  it('ends a job the worker refuses (above its caps) as error, with the reason, before anything of it runs', async () => {
    const { job, entry } = await f.submitAndTake('tenant-r');
    const before = JSON.parse((await f.redis.get(keys.job(job.id)))!) as JobRecord;
    const refusal = { code: 'invalid_spec', message: "limits.pids 41 is above this worker's cap of 40 (LID_CAP_PIDS)" };
    const claim = await claims.claim(job, entry, refusal);
    expect(claim.outcome).toBe('refused');
    const record = (claim as { record: JobRecord }).record;
    expect(record).toEqual({ ...before, state: 'error', finishedAt: record.finishedAt, error: refusal });
    const stored = await written(f.redis, job);
    expect(Object.keys(JSON.parse(stored.record!))).toEqual([...Object.keys(before), 'error']);
    expect(stored.events.map((e) => e.type)).toEqual(['state', 'final']);
    expect(stored).toMatchObject({ dequeued: '1', slots: [], running: 0 });
  });

  it("writes nothing for a worker that no longer holds the job's lock", async () => {
    const { job, entry } = await f.submitAndTake('tenant-l');
    const before = await written(f.redis, job);
    expect(await claims.claim(job, { ...entry, token: 'someone-else' })).toEqual({ outcome: 'lost' });
    expect(await written(f.redis, job)).toEqual(before);
  });

  it('lets exactly one of two workers claiming the same job at once win', async () => {
    // A worker that stalled past its lock and the worker BullMQ gave the job to since both claim it, at once.
    const twice = new JobClaims(other, TTL);
    for (let round = 0; round < 10; round++) {
      const { job, entry } = await f.submitAndTake('tenant-twice');
      const stale = { ...entry, token: crypto.randomUUID() };
      const results = await Promise.all(
        round % 2
          ? [claims.claim(job, entry), twice.claim(job, stale)]
          : [twice.claim(job, stale), claims.claim(job, entry)],
      );
      expect(results.map((r) => r.outcome).sort()).toEqual(['claimed', 'lost']);
      const stored = await written(f.redis, job);
      expect(JSON.parse(stored.record!)).toMatchObject({ state: 'running', attempts: 1 });
      expect(stored.events.filter((e) => e.state === 'running')).toHaveLength(1);
      await f.redis.del(keys.tenantRunning('tenant-twice'));
    }
    expect(await f.redis.get(keys.tenantQueued('tenant-twice'))).toBe('0'); // each counted out once
  });

  it("lets exactly one of two workers take a tenant's last slot at once", async () => {
    await f.redis.set(keys.tenant('one-slot'), tenantRecordText(newTenantRecord('one-slot', { concurrency: 1 }, 'k')));
    const twice = new JobClaims(other, TTL);
    for (let round = 0; round < 10; round++) {
      const a = await f.submitAndTake('one-slot');
      const b = await f.submitAndTake('one-slot');
      const results = await Promise.all([claims.claim(a.job, a.entry), twice.claim(b.job, b.entry)]);
      expect(results.map((r) => r.outcome).sort()).toEqual(['claimed', 'over_limit']);
      expect(await f.redis.zcard(keys.tenantRunning('one-slot'))).toBe(1);
      await f.redis.del(keys.tenantRunning('one-slot'));
    }
  });

  it('takes one round trip', async () => {
    const warm = await f.submitAndTake('tenant-rt');
    await claims.claim(warm.job, warm.entry); // the script is in Redis's cache from here on
    const { job, entry } = await f.submitAndTake('tenant-rt');
    const monitor = await monitorRedis(server.url);
    await claims.claim(job, entry);
    await monitor.stop();
    const trips = monitor.roundTrips(
      monitor.commands,
      (client) => client === 'lid:test-claims',
      () => true,
    );
    expect(trips).toBe(1);
    // ... in which the script did all of this (what used to be ten round trips).
    const inScript = monitor.commands.filter((c) => c.client === 'lua').map((c) => c.args[0]!.toUpperCase());
    expect(inScript).toEqual(
      expect.arrayContaining(['GET', 'EXISTS', 'ZCOUNT', 'SET', 'DECR', 'ZADD', 'SADD', 'XADD']),
    );
  });
});

describe('claiming a job on a full Redis (maxmemory, noeviction)', () => {
  let server: TestRedis;
  let f: Fixture;
  let claims: JobClaims;

  beforeAll(async () => {
    server = await startTestRedis({ maxmemory: '8mb' });
    f = await setUp(server);
    ({ claims } = f);
  });
  afterAll(async () => {
    await f?.close();
    await server?.stop();
  });

  it('writes nothing while Redis is full, and claims the job once memory frees', async () => {
    const { job, entry } = await f.submitAndTake('tenant-full');
    const before = await written(f.redis, job);
    const pressure = keepRedisFull(f.redis);
    await pressure.full;
    await expect(claims.claim(job, entry)).rejects.toThrow(/OOM command not allowed/);
    expect(await written(f.redis, job)).toEqual(before); // not half-claimed: still queued, counted, no slot
    // What the worker does (JobConsumer): wait for room and claim again; the job is neither failed nor lost.
    let refused = 0;
    const claimed = retryWhileRedisFull(() =>
      claims.claim(job, entry).catch((e: unknown) => {
        if (isRedisFull(e)) refused++;
        throw e;
      }),
    );
    for (let i = 0; i < 100 && refused < 1; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(refused).toBeGreaterThanOrEqual(1);
    await pressure.stop();
    expect((await claimed).outcome).toBe('claimed');
    expect(await written(f.redis, job)).toMatchObject({ dequeued: '1', queued: '0', slots: [job.id], running: 1 });
  });
});
