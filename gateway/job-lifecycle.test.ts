// What happens to jobs after submission, seen through the API against a real Redis and BullMQ: fair order across
// tenants, cancelling (queued, held by a worker, running, finished), ?wait, the SSE event stream, and batches.
// Where a job must run, a tiny BullMQ Worker stands in for Lid's worker: it is test scaffolding for the gateway
// (test/fake-worker.ts: it writes the final record with JobStore.update and emits `final`, as the real worker
// does), not the worker.
import type { Job, Queue } from 'bullmq';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRecord, QueuedJob } from '../common/job.js';
import { keys } from '../common/keys.js';
import * as stand from '../test/fake-worker.js';
import {
  call,
  connectionsNamed,
  EVENTS_CONNECTION,
  type GatewayHarness,
  type Reply,
  startGatewayHarness,
  type TestTenant,
} from '../test/gateway-harness.js';
import type { GatewayEnv } from './deps.js';
import { StreamCap } from './stream-cap.js';

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(() => h?.close());

const job = { image: 'busybox', command: ['echo', 'hi'] };
const now = () => new Date().toISOString();

const fakeWorker = (queue: Queue, run: (job: Job<QueuedJob>) => Promise<unknown>) =>
  stand.fakeWorker(h.server.url, queue, run);
const finish = (id: string, stdout: string) => stand.finish(h.jobs, id, stdout);

describe('fairness', () => {
  it("serves another tenant's jobs before most of a busy tenant's backlog", async () => {
    const { app, queue } = h.gateway();
    const [a, b] = [await h.tenant(), await h.tenant()];
    for (let i = 0; i < 200; i++)
      expect((await call(app, 'POST', '/v1/jobs', { tenant: a, body: job })).status).toBe(202);
    const bIds = new Set<string>();
    for (let i = 0; i < 5; i++) bIds.add((await call(app, 'POST', '/v1/jobs', { tenant: b, body: job })).body.id);

    const order = (await queue.getJobs(['prioritized'], 0, -1, true)).sort((x, y) => x.priority - y.priority);
    expect(order).toHaveLength(205);
    const firstTen = order.slice(0, 10).map((j) => j.id!);
    expect(firstTen.filter((id) => bIds.has(id))).toHaveLength(5);
  });

  it("orders a tenant's own jobs by their priority within the same position", async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant();
    const low = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, priority: 1 } })).body.id;
    const urgent = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, priority: 10 } })).body.id;
    // Positions 1 and 2: 1*10 + 9 = 19 and 2*10 + 0 = 20. Urgency reorders neighbours only.
    expect((await queue.getJob(low))?.opts.priority).toBe(19);
    expect((await queue.getJob(urgent))?.opts.priority).toBe(20);
  });
});

describe('cancelling', () => {
  let app: Hono<GatewayEnv>;
  let queue: Queue;
  let t: TestTenant;
  beforeAll(async () => {
    ({ app, queue } = h.gateway());
    t = await h.tenant();
  });

  it('cancels a queued job: cancelled, off the queue, no longer counted, final event; a second DELETE is 409', async () => {
    const { id } = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: job })).body;
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('1');
    const reply = await call(app, 'DELETE', `/v1/jobs/${id}`, { tenant: t });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ id, state: 'cancelled', finishedAt: expect.any(String) });
    expect(await queue.getJob(id)).toBeUndefined();
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBe('0');
    expect((await call(app, 'GET', `/v1/jobs/${id}`, { tenant: t })).body.state).toBe('cancelled');
    const events = await h.jobs.readEvents(id, '0', 1);
    expect(events.map((e) => e.event.type)).toEqual(['state', 'state', 'final']);
    const again = await call(app, 'DELETE', `/v1/jobs/${id}`, { tenant: t });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'conflict', message: expect.stringMatching(/already cancelled/) });
  });

  it('asks the worker to cancel a job it holds (locked) or runs, answering 202', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let taken!: (id: string) => void;
    const took = new Promise<string>((resolve) => (taken = resolve));
    const worker = fakeWorker(queue, async (j) => {
      taken(j.id!);
      await held;
    });
    try {
      const { id } = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: job })).body;
      expect(await took).toBe(id);
      // The record still says queued, but BullMQ refuses to remove a job a worker holds: cancel goes to the worker.
      const reply = await call(app, 'DELETE', `/v1/jobs/${id}`, { tenant: t });
      expect(reply.status).toBe(202);
      expect(await h.jobs.cancelRequested(id)).toBe(true);
      expect(await queue.getJob(id)).toBeDefined();

      await h.jobs.update(id, (r) => ({ ...r, state: 'running', startedAt: now() }));
      const running = await call(app, 'DELETE', `/v1/jobs/${id}`, { tenant: t });
      expect(running).toMatchObject({ status: 202, body: { id, state: 'running' } });
    } finally {
      release();
      await worker.close();
    }
  });
});

describe('?wait', () => {
  it('answers 202 with the current record when the job does not end in time', async () => {
    const { app } = h.gateway();
    const t = await h.tenant();
    const started = Date.now();
    const reply = await call(app, 'POST', '/v1/jobs?wait=1', { tenant: t, body: job });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(reply).toMatchObject({ status: 202, body: { state: 'queued' } });
    expect(await connectionsNamed(h.redis, EVENTS_CONNECTION)).toBe(0);
  });

  it('answers 200 with the final record when a worker finishes the job in time', async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant();
    const worker = fakeWorker(queue, (j) => finish(j.data.id, `ran ${j.data.request.command.join(' ')}\n`));
    try {
      const reply = await call(app, 'POST', '/v1/jobs?wait=10', { tenant: t, body: job });
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ state: 'completed', result: { stdout: 'ran echo hi\n' } });
    } finally {
      await worker.close();
    }
  });
});

/** Reads an SSE response to its end (or until `stop` says so) and returns its events, data parsed. */
async function readSse(res: Response, stop?: (events: { event: string; data: unknown }[]) => Promise<boolean>) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; id?: string; data: unknown }[] = [];
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const field = (name: string) => block.match(new RegExp(`^${name}: ?(.*)$`, 'm'))?.[1];
      if (field('event')) events.push({ event: field('event')!, id: field('id'), data: JSON.parse(field('data')!) });
    }
    if (await stop?.(events)) {
      await reader.cancel();
      break;
    }
  }
  return events;
}

describe('events (SSE)', () => {
  it('replays and then follows state, output and final events in order, and closes after final', async () => {
    const { app } = h.gateway();
    const t = await h.tenant();
    const { id } = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: job })).body;
    await h.jobs.emit(id, { type: 'state', state: 'running', at: now() });
    const res = await app.request(`/v1/jobs/${id}/events`, { headers: t.headers });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reading = readSse(res);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the rest happens while the client follows
    await h.jobs.emit(id, { type: 'output', stream: 'stdout', data: 'hello\n', encoding: 'utf8' });
    await h.jobs.emit(id, { type: 'output', stream: 'stderr', data: 'AAE=', encoding: 'base64' });
    await finish(id, 'hello\n');
    const events = await reading;
    expect(events.map((e) => e.event)).toEqual(['state', 'state', 'output', 'output', 'state', 'final']);
    expect(events.map((e) => e.data)).toMatchObject([
      { state: 'queued' },
      { state: 'running' },
      { stream: 'stdout', data: 'hello\n', encoding: 'utf8' },
      { stream: 'stderr', data: 'AAE=', encoding: 'base64' },
      { state: 'completed' },
      { id, state: 'completed', result: { stdout: 'hello\n' } },
    ]);

    // Resuming after an event replays only what came after it; a finished job's stream ends at once.
    const resumed = await app.request(`/v1/jobs/${id}/events`, {
      headers: { ...t.headers, 'Last-Event-ID': events[3]!.id! },
    });
    expect((await readSse(resumed)).map((e) => e.event)).toEqual(['state', 'final']);
  });

  it('stops following when the client goes away, freeing its wait and its stream slot; it has no connection', async () => {
    const streams = new StreamCap(10);
    const { app, notifier } = h.gateway(undefined, { streams });
    const t = await h.tenant();
    const { id } = (await call(app, 'POST', '/v1/jobs', { tenant: t, body: job })).body;
    const res = await app.request(`/v1/jobs/${id}/events`, { headers: t.headers });
    let following = { waiting: 0, open: 0, connections: -1 };
    const events = await readSse(res, async (events) => {
      await new Promise((resolve) => setTimeout(resolve, 50)); // past the replay, into the wait
      following = {
        waiting: notifier.waiting,
        open: streams.count(t.name),
        connections: await connectionsNamed(h.redis, EVENTS_CONNECTION),
      };
      return events.length === 1;
    });
    expect(events).toHaveLength(1);
    // It was following: waiting on the shared subscription, holding a slot, and no Redis connection of its own.
    expect(following).toEqual({ waiting: 1, open: 1, connections: 0 });
    for (let i = 0; i < 50 && (notifier.waiting > 0 || streams.count(t.name) > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect({ waiting: notifier.waiting, open: streams.count(t.name) }).toEqual({ waiting: 0, open: 0 });
  });
});

describe('batches', () => {
  it('queues N jobs and pages through their records with counts by state', async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant();
    const jobs = Array.from({ length: 25 }, (_, i) => ({ ...job, command: ['echo', String(i)] }));
    const created = await call(app, 'POST', '/v1/batches', { tenant: t, body: { jobs } });
    expect(created).toMatchObject({ status: 202, body: { id: expect.stringMatching(/^bat_/), total: 25 } });
    expect(await queue.getJobCounts('prioritized')).toEqual({ prioritized: 25 });

    const seen: JobRecord[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const query: string = cursor ? `?limit=10&cursor=${cursor}` : '?limit=10';
      const page: Reply = await call(app, 'GET', `/v1/batches/${created.body.id}${query}`, { tenant: t });
      expect(page.status).toBe(200);
      expect(page.body.counts).toEqual({ queued: 25, running: 0, completed: 0, cancelled: 0, error: 0 });
      seen.push(...page.body.jobs);
      cursor = page.body.nextCursor;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toHaveLength(25);
    expect(new Set(seen.map((r) => r.id)).size).toBe(25);

    const other = await h.tenant();
    expect((await call(app, 'GET', `/v1/batches/${created.body.id}`, { tenant: other })).status).toBe(404);
  });

  it('refuses a batch with one bad job, naming it, and queues nothing', async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant();
    const jobs = [job, job, job, { ...job, limits: { timeoutMs: 10 * 60_000 } }, job];
    const reply = await call(app, 'POST', '/v1/batches', { tenant: t, body: { jobs } });
    expect(reply.status).toBe(400);
    expect(reply.body.error.details).toContainEqual(expect.objectContaining({ path: 'jobs.3.limits.timeoutMs' }));
    const typo = await call(app, 'POST', '/v1/batches', { tenant: t, body: { jobs: [job, { ...job, imgae: 'x' }] } });
    expect(typo.body.error.details).toContainEqual(expect.objectContaining({ path: 'jobs.1.imgae' }));
    const tooMany = await call(app, 'POST', '/v1/batches', { tenant: t, body: { jobs: Array(1001).fill(job) } });
    expect(tooMany.body.error.details).toContainEqual(expect.objectContaining({ path: 'jobs' }));
    expect(await queue.count()).toBe(0);
    expect(await h.redis.get(keys.tenantQueued(t.name))).toBeNull();
  });
});
