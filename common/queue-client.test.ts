// The queue client against a real Redis: it queues a job as the gateway does (record, `queued` event, BullMQ options
// and fair-share priority, all from common/job-submitter.ts), and holds it to what its header says it checks: the
// tenant's max queued, limit ceilings and network ceiling from its record, or a new tenant's defaults when it has none
// (no network), and a tenant name that fits in Redis keys.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isLidError } from './errors.js';
import type { QueuedJob } from './job.js';
import { fairPriority, JOB_OPTIONS } from './job-submitter.js';
import { keys, QUEUES } from './keys.js';
import { LidQueueClient } from './queue-client.js';
import { connectRedis } from './redis.js';
import { newTenantRecord, TENANT_DEFAULTS, tenantRecordText, type TenantSettings } from './tenant-record.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';

const MiB = 1024 * 1024;
const job = { image: 'busybox:1', command: ['true'] };

let server: TestRedis;
let redis: Redis;
let queue: Queue;
let client: LidQueueClient;

beforeAll(async () => {
  server = await startTestRedis();
  redis = connectRedis(server.url, 'test');
  queue = new Queue(QUEUES.jobs, { connection: redis, prefix: QUEUES.prefix });
  client = new LidQueueClient(server.url, 600);
});
afterAll(async () => {
  await client?.close();
  await queue?.close();
  redis?.disconnect();
  await server?.stop();
});

const createTenant = (name: string, settings: Partial<TenantSettings>) =>
  redis.set(keys.tenant(name), tenantRecordText(newTenantRecord(name, settings, 'no-key')));

/** The LidError a promise rejects with. */
async function refusal(p: Promise<unknown>) {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(isLidError(e), String(e)).toBe(true);
  return e as { code: string; message: string; details?: Record<string, unknown> };
}

it('queues a job as the gateway does: record, queued event, BullMQ options, fair-share priority', async () => {
  const first = await client.submit('tenant-q', { ...job, metadata: { run: '1' } });
  const second = await client.submit('tenant-q', { ...job, priority: 10 });
  expect(first).toMatchObject({
    id: expect.stringMatching(/^job_[A-Za-z0-9_-]{20}$/),
    tenant: 'tenant-q',
    image: job.image,
    state: 'queued',
    attempts: 0,
    traceId: null,
    metadata: { run: '1' },
  });
  expect(JSON.parse((await redis.get(keys.job(first.id)))!)).toEqual(first);
  const events = await redis.xrange(keys.jobEvents(first.id), '-', '+');
  expect(events.map(([, f]) => JSON.parse(f[1]!))).toEqual([{ type: 'state', state: 'queued', at: first.createdAt }]);
  const entries = await Promise.all([first.id, second.id].map((id) => queue.getJob(id)));
  expect(entries[0]!.data as QueuedJob).toMatchObject({ id: first.id, tenant: 'tenant-q', createdAt: first.createdAt });
  expect(entries[0]!.opts).toMatchObject({ ...JOB_OPTIONS, priority: fairPriority(1) });
  expect(entries[1]!.opts).toMatchObject({ priority: fairPriority(2, 10) });
  expect(await redis.get(keys.tenantQueued('tenant-q'))).toBe('2');
});

it("refuses a job over the tenant's max queued and counts nothing for it", async () => {
  await createTenant('small', { maxQueued: 2 });
  await client.submit('small', job);
  await client.submit('small', job);
  const e = await refusal(client.submit('small', job));
  expect(e.code).toBe('queue_full');
  expect(e.message).toBe(
    'tenant small may have 2 jobs queued and has 2: this job does not fit; retry when some have started',
  );
  expect(e.details).toEqual({ maxQueued: 2, queued: 2, requested: 1 });
  expect(await redis.get(keys.tenantQueued('small'))).toBe('2');
  expect(await queue.getJobCountByTypes('prioritized', 'wait')).toBe(4); // tenant-q's two and small's two
});

it("gives a tenant without a record a new tenant's max queued", async () => {
  await redis.set(keys.tenantQueued('unrecorded'), TENANT_DEFAULTS.maxQueued - 1);
  await client.submit('unrecorded', job);
  expect((await refusal(client.submit('unrecorded', job))).code).toBe('queue_full');
});

it("holds limits under the tenant's ceilings: above is refused naming the limit, left out is lowered", async () => {
  await createTenant('capped', { maxMemoryBytes: 128 * MiB, maxPids: 64 });
  const e = await refusal(client.submit('capped', { ...job, limits: { memoryBytes: 256 * MiB, pids: 65 } }));
  expect(e.code).toBe('invalid_spec');
  expect(e.message).toBe(
    `limits.memoryBytes ${256 * MiB} is above this tenant's ceiling of ${128 * MiB}; ` +
      "limits.pids 65 is above this tenant's ceiling of 64",
  );
  expect(await redis.get(keys.tenantQueued('capped'))).toBeNull(); // refused before anything was counted
  // The defaults (256 MiB, 128 pids) are above the tenant's ceilings: the job gets them, as from the gateway.
  const { id } = await client.submit('capped', job);
  expect(((await queue.getJob(id))!.data as QueuedJob).request.limits).toEqual({ memoryBytes: 128 * MiB, pids: 64 });
  // A tenant without a record has a new tenant's ceilings (1 GiB of memory).
  const defaults = await refusal(client.submit('unrecorded-2', { ...job, limits: { memoryBytes: 2048 * MiB } }));
  expect(defaults.message).toMatch(/^limits\.memoryBytes \d+ is above this tenant's ceiling of 1073741824$/);
});

it('refuses a tenant name that cannot be part of a Redis key, and a malformed job naming the field', async () => {
  const name = await refusal(client.submit('Tenant:A', job));
  expect(name).toMatchObject({ code: 'invalid_spec', message: expect.stringMatching(/tenant name "Tenant:A"/) });
  const spec = await refusal(client.submit('tenant-q', { ...job, image: '' }));
  expect(spec).toMatchObject({ code: 'invalid_spec', message: expect.stringMatching(/^invalid job: image: /) });
});

it("holds the network under the tenant's ceiling, naming network; a tenant without a record has none", async () => {
  await createTenant('listed', { network: 'allowlist' });
  const allow = { allow: ['pypi.org', '203.0.113.0/24:443'] };
  const over = await refusal(client.submit('listed', { ...job, network: 'internet' }));
  expect(over.code).toBe('invalid_spec');
  expect(over.message).toMatch(/^invalid job: network: "internet" is above this tenant's network ceiling "allowlist"/);
  expect(over.details).toEqual({ problems: [expect.objectContaining({ path: 'network', ceiling: 'allowlist' })] });
  expect(await redis.get(keys.tenantQueued('listed'))).toBeNull(); // refused before anything was counted
  const { id } = await client.submit('listed', { ...job, network: allow });
  expect(((await queue.getJob(id))!.data as QueuedJob).request.network).toEqual(allow);
  expect((await client.get(id))?.network).toEqual(allow);
  const unrecorded = await refusal(client.submit('unrecorded-3', { ...job, network: allow }));
  expect(unrecorded.message).toContain('network ceiling "none": it may use "none"');
  const plain = await client.submit('unrecorded-3', job);
  expect(((await queue.getJob(plain.id))!.data as QueuedJob).request.network).toBe('none');
});
