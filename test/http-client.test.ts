// LidClient against a real gateway over HTTP (startGateway on a free port, a private Redis, a BullMQ queue of its
// own per test) with a stand-in worker on that queue (test/fake-worker.ts): submit and wait, events to the end and
// across a gateway restart, cancel, batches, refusals as typed errors, the rate limit's Retry-After. And the client
// against the document: every request it makes is an operation of /openapi.json with the schemas it assumes.
import crypto from 'node:crypto';
import { type Job, Queue, type Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { LidClient, type LidJobEvent, OPERATIONS } from '../common/http-client.js';
import type { QueuedJob } from '../common/job.js';
import { QUEUES } from '../common/keys.js';
import { isLidApiError, LidApiError } from '../common/lid-api-error.js';
import { connectRedis } from '../common/redis.js';
import { apiSchemas } from '../gateway/api-schemas.js';
import { type RunningGateway, startGateway } from '../gateway/server.js';
import { fakeWorker, finish } from './fake-worker.js';
import { type GatewayHarness, startGatewayHarness, type TestTenant } from './gateway-harness.js';

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(() => h?.close());

const job = { image: 'busybox', command: ['echo', 'hi'] };
const now = () => new Date().toISOString();

interface Served {
  gateway: RunningGateway;
  queue: Queue;
  tenant: TestTenant;
  lid: LidClient;
  /** Starts a stand-in worker on this queue, closed when the test ends. */
  worker(run: (job: Job<QueuedJob>) => Promise<unknown>): Worker;
}

/** A gateway on its own queue (on `port`, or a free one) and a tenant's client of it, closed when the test ends. */
async function serve(opts: { port?: number; queue?: Queue; tenant?: TestTenant } = {}): Promise<Served> {
  let queue = opts.queue;
  if (!queue) {
    const name = `jobs-${crypto.randomBytes(4).toString('hex')}`;
    const made = new Queue(name, { connection: h.redis, prefix: QUEUES.prefix });
    onTestFinished(() => made.close());
    queue = made;
  }
  const gateway = await startGateway(
    { ...h.config, port: opts.port ?? 0 },
    {
      redis: h.redis,
      blockingRedis: () => connectRedis(h.server.url, 'test-client-events'),
      queue,
      jobs: h.jobs,
      tenants: h.tenants,
    },
  );
  onTestFinished(() => gateway.close());
  const tenant = opts.tenant ?? (await h.tenant());
  return {
    gateway,
    queue,
    tenant,
    lid: new LidClient({ url: gateway.url, apiKey: tenant.apiKey }),
    worker(run) {
      const worker = fakeWorker(h.server.url, queue, run);
      onTestFinished(() => worker.close());
      return worker;
    },
  };
}

async function collect(events: AsyncIterable<LidJobEvent>): Promise<LidJobEvent[]> {
  const seen: LidJobEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

describe('LidClient', () => {
  it('submits a job and waits for its end, or has the gateway wait (?wait)', async () => {
    const { lid, worker } = await serve();
    const submitted = await lid.submit({ image: 'busybox', command: ['echo', 'one'] });
    expect(submitted).toMatchObject({ id: expect.stringMatching(/^job_/), state: 'queued', image: 'busybox' });
    worker((j) => finish(h.jobs, j.data.id, `ran ${j.data.request.command.join(' ')}\n`));
    const record = await lid.wait(submitted.id);
    expect(record).toMatchObject({ id: submitted.id, state: 'completed', result: { stdout: 'ran echo one\n' } });
    expect(await lid.get(submitted.id)).toEqual(record);

    const waited = await lid.submit(job, { wait: 10 });
    expect(waited).toMatchObject({ state: 'completed', result: { stdout: 'ran echo hi\n' } });
  });

  it('gives the record as it is when wait times out', async () => {
    const { lid } = await serve(); // no worker: the job stays queued
    const { id } = await lid.submit(job);
    const started = Date.now();
    expect(await lid.wait(id, { timeoutMs: 300 })).toMatchObject({ id, state: 'queued' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("streams a job's events as they happen, through to the final record", async () => {
    const { lid, worker } = await serve();
    const { id } = await lid.submit(job);
    const following = collect(lid.events(id));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the client follows before anything happens
    worker(async (j) => {
      await h.jobs.emit(j.data.id, { type: 'state', state: 'running', at: now() });
      await h.jobs.emit(j.data.id, { type: 'output', stream: 'stdout', data: 'hello\n', encoding: 'utf8' });
      await h.jobs.emit(j.data.id, { type: 'output', stream: 'stderr', data: 'AAE=', encoding: 'base64' });
      await finish(h.jobs, j.data.id, 'hello\n');
    });
    const events = await following;
    expect(events.map((e) => e.type)).toEqual(['state', 'state', 'output', 'output', 'state', 'final']);
    expect(events.slice(0, 4)).toMatchObject([
      { state: 'queued' },
      { state: 'running' },
      { stream: 'stdout', data: 'hello\n', encoding: 'utf8' },
      { stream: 'stderr', data: 'AAE=', encoding: 'base64' },
    ]);
    expect(events.at(-1)).toMatchObject({ type: 'final', record: { id, state: 'completed' } });
    // Each event carries the id that resumes after it: from the second, only what followed it comes again.
    const resumed = await collect(lid.events(id, { lastEventId: events[1]!.id! }));
    expect(resumed.map((e) => e.type)).toEqual(['output', 'output', 'state', 'final']);
  });

  it('resumes a stream cut by a gateway restart after the last event it had, losing and repeating nothing', async () => {
    const first = await serve();
    const { lid, tenant, queue } = first;
    const { id } = await lid.submit(job);
    let step!: () => void;
    const stepped = new Promise<void>((resolve) => (step = resolve));
    first.worker(async (j) => {
      await h.jobs.emit(j.data.id, { type: 'output', stream: 'stdout', data: 'before\n', encoding: 'utf8' });
      await stepped;
      await h.jobs.emit(j.data.id, { type: 'output', stream: 'stdout', data: 'after\n', encoding: 'utf8' });
      await finish(h.jobs, j.data.id, 'before\nafter\n');
    });
    const events: LidJobEvent[] = [];
    const following = (async () => {
      for await (const event of lid.events(id)) {
        events.push(event);
        if (event.type === 'output' && event.data === 'before\n') {
          // The same port, so the client finds the new gateway where the old one was.
          const { port } = new URL(first.gateway.url);
          await first.gateway.close();
          await serve({ port: Number(port), queue, tenant });
          step();
        }
      }
    })();
    await following;
    expect(events.map((e) => (e.type === 'output' ? e.data : e.type))).toEqual([
      'state',
      'before\n',
      'after\n',
      'state',
      'final',
    ]);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it('cancels a queued job, and the stream of a cancelled job ends with its final record', async () => {
    const { lid } = await serve();
    const { id } = await lid.submit(job);
    expect(await lid.cancel(id)).toMatchObject({ id, state: 'cancelled' });
    const events = await collect(lid.events(id));
    expect(events.at(-1)).toMatchObject({ type: 'final', record: { state: 'cancelled' } });
    expect(await lid.wait(id)).toMatchObject({ state: 'cancelled' });
  });

  it('creates a batch and reads it back a page at a time', async () => {
    const { lid, worker } = await serve();
    const jobs = Array.from({ length: 3 }, (_, i) => ({ image: 'busybox', command: ['echo', String(i)] }));
    const created = await lid.createBatch({ jobs }, { idempotencyKey: 'batch-1' });
    expect(created).toEqual({ id: expect.stringMatching(/^bat_/), total: 3 });
    expect(await lid.createBatch({ jobs }, { idempotencyKey: 'batch-1' })).toEqual(created);
    worker((j) => finish(h.jobs, j.data.id, `${j.data.request.command[1]}\n`));

    const first = await lid.getBatch(created.id, { limit: 2 });
    expect(first.jobs).toHaveLength(2);
    expect(first.nextCursor).toBe('2');
    for (const record of first.jobs) await lid.wait(record.id);
    const rest = await lid.getBatch(created.id, { limit: 2, cursor: first.nextCursor! });
    expect(rest).toMatchObject({ nextCursor: null, jobs: [expect.objectContaining({ id: expect.any(String) })] });
    await lid.wait(rest.jobs[0]!.id);
    expect((await lid.getBatch(created.id)).counts).toEqual({
      queued: 0,
      running: 0,
      completed: 3,
      cancelled: 0,
      error: 0,
    });
  });

  it("turns a refusal into a LidApiError with the envelope's code, message and details", async () => {
    const { lid, gateway } = await serve();
    const refused = await lid.submit({ ...job, limits: { timeoutMs: 1e12 } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LidApiError);
    expect(isLidApiError(refused)).toBe(true);
    expect(refused).toMatchObject({
      name: 'LidApiError',
      code: 'invalid_spec',
      status: 400,
      message: expect.stringMatching(/^invalid job: limits\.timeoutMs: /),
      details: [expect.objectContaining({ path: 'limits.timeoutMs' })],
    });
    await expect(lid.get('job_AAAAAAAAAAAAAAAAAAAA')).rejects.toMatchObject({ code: 'not_found', status: 404 });
    await expect(lid.createBatch({ jobs: [] })).rejects.toMatchObject({ code: 'invalid_spec', status: 400 });
    const stranger = new LidClient({ url: gateway.url, apiKey: `lid_${'A'.repeat(43)}` });
    await expect(stranger.get('job_AAAAAAAAAAAAAAAAAAAA')).rejects.toMatchObject({
      code: 'unauthorized',
      status: 401,
      message: 'unknown or revoked API key',
    });
    const nobody = new LidClient({ url: 'http://127.0.0.1:1', apiKey: 'lid_x' });
    await expect(nobody.submit(job)).rejects.toMatchObject({
      code: 'unavailable',
      status: null,
      message: expect.stringMatching(/^cannot reach the gateway at http:\/\/127\.0\.0\.1:1 /),
    });
  });

  it("waits out a rate limit's Retry-After, or surfaces it when told not to retry", async () => {
    const tenant = await h.tenant({ ratePerSec: 1 });
    const { lid, gateway } = await serve({ tenant });
    const { id } = await lid.submit(job); // the bucket's one token
    const started = Date.now();
    expect(await lid.get(id)).toMatchObject({ id }); // refused once, then retried after Retry-After: 1
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);

    const impatient = new LidClient({ url: gateway.url, apiKey: tenant.apiKey, rateLimitRetries: 0 });
    await expect(impatient.get(id)).rejects.toMatchObject({ code: 'rate_limited', status: 429, retryAfterMs: 1000 });
  });
});

describe('LidClient against /openapi.json', () => {
  type Media = { schema?: { $ref?: string } };
  type Operation = {
    parameters?: { name: string; in: string }[];
    requestBody?: { content: Record<string, Media> };
    responses: Record<string, { content?: Record<string, Media> }>;
  };

  it('makes only requests the document lists, sending and reading the schemas it names', async () => {
    const { gateway } = await serve();
    const doc = (await (await fetch(`${gateway.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, Operation>>;
    };
    const nameOf = (schema: Parameters<typeof apiSchemas.get>[0]) =>
      `#/components/schemas/${apiSchemas.get(schema)?.id}`;
    for (const [name, op] of Object.entries(OPERATIONS)) {
      const documented = doc.paths[op.path]?.[op.method.toLowerCase()];
      expect(documented, `${name}: ${op.method} ${op.path}`).toBeDefined();
      if ('body' in op) {
        expect(documented!.requestBody?.content['application/json']?.schema?.$ref, name).toBe(nameOf(op.body));
      }
      const parameters = documented!.parameters ?? [];
      for (const q of 'query' in op ? op.query : [])
        expect(parameters, name).toContainEqual(expect.objectContaining({ name: q, in: 'query' }));
      for (const header of 'headers' in op ? op.headers : []) {
        expect(parameters, name).toContainEqual(expect.objectContaining({ name: header, in: 'header' }));
      }
      for (const [status, schema] of Object.entries(op.responses)) {
        const content = documented!.responses[status]?.content;
        if (schema === null) expect(Object.keys(content ?? {}), name).toEqual(['text/event-stream']);
        else expect(content?.['application/json']?.schema?.$ref, `${name} ${status}`).toBe(nameOf(schema));
      }
    }
  });
});
