// Every job limit under min(tenant ceiling, server cap), through the HTTP API against a real Redis: a job asking for
// more than either gets a 400 naming the field and the ceiling, alone or inside a batch, and is never queued; the
// same job at the ceiling is accepted (so the refusals are about the value, not the request); and a limit left out
// whose default is above the ceiling is queued at the ceiling.
import crypto from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import type { JobLimits } from '../common/job.js';
import { QUEUES } from '../common/keys.js';
import { connectRedis } from '../common/redis.js';
import { call, expectError, type GatewayHarness, startGatewayHarness } from '../test/gateway-harness.js';
import { createApp } from './app.js';
import { JobNotifier } from './job-notifier.js';

const MiB = 1024 * 1024;
const job = { image: 'busybox', command: ['true'] };

let h: GatewayHarness;
const queues: Queue[] = [];
const notifiers: JobNotifier[] = [];

beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(async () => {
  for (const n of notifiers) n.close();
  await Promise.all(queues.map((q) => q.close()));
  await h?.close();
});

/** A gateway whose server caps come from `env` (LID_CAP_*), on a queue of its own. */
function gatewayWithCaps(env: Record<string, string>) {
  const config = loadConfig({ REDIS_URL: h.server.url, LOG_LEVEL: 'silent', ...env });
  const queue = new Queue(`jobs-${crypto.randomBytes(4).toString('hex')}`, {
    connection: h.redis,
    prefix: QUEUES.prefix,
  });
  const finals = new JobNotifier(() => connectRedis(h.server.url, 'test-finals'));
  queues.push(queue);
  notifiers.push(finals);
  const app = createApp({
    redis: h.redis,
    blockingRedis: () => connectRedis(h.server.url, 'test-events'),
    queue,
    jobs: h.jobs,
    tenants: h.tenants,
    config,
    notifier: finals,
  });
  return { app, queue };
}

// Tenant ceilings, each a little above the job default so that asking for nothing stays valid.
const TENANT = {
  maxTimeoutMs: 20_000,
  maxMemoryBytes: 300 * MiB,
  maxCpus: 1.5,
  maxPids: 200,
  maxOutputBytes: 2 * MiB,
  maxDiskBytes: 100 * MiB,
};
const CEILING: Required<JobLimits> = {
  timeoutMs: TENANT.maxTimeoutMs,
  memoryBytes: TENANT.maxMemoryBytes,
  cpus: TENANT.maxCpus,
  pids: TENANT.maxPids,
  outputBytes: TENANT.maxOutputBytes,
  diskBytes: TENANT.maxDiskBytes,
};
const above = (field: keyof JobLimits) => (field === 'cpus' ? CEILING.cpus + 0.01 : CEILING[field] + 1);
const FIELDS = Object.keys(CEILING) as (keyof JobLimits)[];

describe("a tenant's ceilings", () => {
  it.each(FIELDS)(
    'refuses limits.%s above the ceiling with a 400 naming it, and takes it at the ceiling',
    async (f) => {
      const { app, queue } = gatewayWithCaps({});
      const t = await h.tenant(TENANT);
      const over = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, limits: { [f]: above(f) } } });
      expectError(over, 400, 'invalid_spec', `limits.${f}`);
      expect(over.body.error.message).toBe(`limits.${f} ${above(f)} is above this tenant's ceiling of ${CEILING[f]}`);
      expect(over.body.error.details).toEqual([
        { path: `limits.${f}`, message: over.body.error.message, asked: above(f), ceiling: CEILING[f] },
      ]);

      const batch = await call(app, 'POST', '/v1/batches', {
        tenant: t,
        body: { jobs: [job, job, job, { ...job, limits: { [f]: above(f) } }] },
      });
      expectError(batch, 400, 'invalid_spec', `jobs.3.limits.${f}`);
      expect(await queue.count()).toBe(0); // nothing of a refused request is queued

      const at = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, limits: { [f]: CEILING[f] } } });
      expect(at.status, JSON.stringify(at.body)).toBe(202);
      expect((await queue.getJob(at.body.id))?.data.request.limits).toMatchObject({ [f]: CEILING[f] });
      const batchAt = await call(app, 'POST', '/v1/batches', {
        tenant: t,
        body: { jobs: [job, { ...job, limits: { [f]: CEILING[f] } }] },
      });
      expect(batchAt.status, JSON.stringify(batchAt.body)).toBe(202);
    },
  );

  it('names every field that is over, and lowers defaults above a ceiling to it', async () => {
    const { app, queue } = gatewayWithCaps({});
    const t = await h.tenant({ ...TENANT, maxPids: 64, maxOutputBytes: 512 * 1024 });
    const over = await call(app, 'POST', '/v1/jobs', {
      tenant: t,
      body: { ...job, limits: { pids: 65, diskBytes: 101 * MiB } },
    });
    expectError(over, 400, 'invalid_spec', 'limits.pids');
    expectError(over, 400, 'invalid_spec', 'limits.diskBytes');
    // The job defaults are 128 pids and 1 MiB of output, both above these ceilings: the job gets the ceilings.
    const defaults = await call(app, 'POST', '/v1/jobs', { tenant: t, body: job });
    expect((await queue.getJob(defaults.body.id))?.data.request.limits).toEqual({ pids: 64, outputBytes: 512 * 1024 });
  });
});

describe("the server's caps", () => {
  const CAPS = { LID_CAP_PIDS: '150', LID_CAP_CPUS: '1.25', LID_CAP_OUTPUT: '1m', LID_CAP_TIMEOUT: '15s' };

  it('win over a higher tenant ceiling, naming the variable that sets them', async () => {
    const { app, queue } = gatewayWithCaps(CAPS);
    const t = await h.tenant(TENANT); // pids 200, cpus 1.5, output 2 MiB, timeout 20 s: all above the caps
    const cases = [
      { field: 'pids', value: 151, cap: 150, variable: 'LID_CAP_PIDS' },
      { field: 'cpus', value: 1.5, cap: 1.25, variable: 'LID_CAP_CPUS' },
      { field: 'outputBytes', value: MiB + 1, cap: MiB, variable: 'LID_CAP_OUTPUT' },
      { field: 'timeoutMs', value: 15_001, cap: 15_000, variable: 'LID_CAP_TIMEOUT' },
    ];
    for (const { field, value, cap, variable } of cases) {
      const over = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, limits: { [field]: value } } });
      expectError(over, 400, 'invalid_spec', `limits.${field}`);
      expect(over.body.error.message).toBe(
        `limits.${field} ${value} is above this server's cap of ${cap} (${variable})`,
      );
      const at = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, limits: { [field]: cap } } });
      expect(at.status, JSON.stringify(at.body)).toBe(202);
    }
    // Control: the same tenant on a gateway with the default caps may go up to its own ceilings.
    const { app: roomy } = gatewayWithCaps({});
    const roomyReply = await call(roomy, 'POST', '/v1/jobs', {
      tenant: t,
      body: { ...job, limits: { pids: 200, cpus: 1.5, outputBytes: 2 * MiB, timeoutMs: 20_000 } },
    });
    expect(roomyReply.status, JSON.stringify(roomyReply.body)).toBe(202);
    // A cap below a job default lowers the default, as a tenant ceiling does.
    const { app: tight, queue: tightQueue } = gatewayWithCaps({ LID_CAP_PIDS: '100' });
    const defaults = await call(tight, 'POST', '/v1/jobs', { tenant: t, body: job });
    expect((await tightQueue.getJob(defaults.body.id))?.data.request.limits).toEqual({ pids: 100 });
    expect(await queue.count()).toBe(cases.length);
  });

  it('refuse a bad cap at start, naming the variable', () => {
    expect(() => loadConfig({ LID_CAP_MEMORY: 'lots' })).toThrow(
      /^LID_CAP_MEMORY="lots" is invalid: "lots" is not a size/,
    );
    expect(() => loadConfig({ LID_CAP_PIDS: '0' })).toThrow(/^LID_CAP_PIDS="0" is invalid/);
    expect(() => loadConfig({ LID_CAP_TIMEOUT: '2000m' })).toThrow(
      /LID_CAP_TIMEOUT="2000m" is invalid: must be between/,
    );
    expect(loadConfig({ LID_CAP_DISK: '2g' }).capDiskBytes).toBe(2 * 1024 * MiB);
  });
});
