// Workers against real Redis, real sandboxes and a real image store, driven the queue-driven way (LidQueueClient):
// results, streamed output, cancellation, tenant concurrency, exactly-once results, and the failure cases --
// a worker SIGKILLed mid-job, a worker stopped gracefully, Redis killed and restarted from its AOF.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { callbackSecret, loadSigningKey } from '../common/callback-secret.js';
import { loadConfig } from '../common/config.js';
import type { JobRecord } from '../common/job.js';
import { keys, QUEUES } from '../common/keys.js';
import { LidQueueClient } from '../common/queue-client.js';
import { connectRedis } from '../common/redis.js';
import { newTenantRecord, tenantRecordText } from '../common/tenant-record.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';
import { monitorRedis } from '../test/redis-monitor.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { LidWorker } from './worker.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-worker-'));
const dataDir = path.join(tmp, 'data');
const IMAGE = 'busybox-test:1';
const childScript = new URL('../test/worker-child.ts', import.meta.url).pathname;

describePrivileged('worker', () => {
  let redis: TestRedis;
  let client: LidQueueClient;
  let worker: LidWorker | null = null;
  const children: ChildProcess[] = [];
  const env = {
    LID_DATA_DIR: dataDir,
    LID_WORKER_CONCURRENCY: '4',
    LID_SHUTDOWN_GRACE_MS: '300',
    LID_ALLOW_PRIVATE_EGRESS: '127.0.0.0/8', // the callback test's receiver is on loopback
  };
  const config = loadConfig(env);
  const start = () =>
    LidWorker.start(config, { redisUrl: redis.url, logger: pino({ level: 'silent' }), lockDurationMs: 2000 });

  beforeAll(async () => {
    redis = await startTestRedis();
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), layout);
    client = new LidQueueClient(redis.url);
    worker = await start();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await worker?.close();
    await client?.close();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const waitFor = async (id: string, pred: (r: JobRecord) => boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await client.get(id);
      if (r && pred(r)) return r;
      if (Date.now() > deadline) throw new Error(`job ${id} never reached the expected state (now ${r?.state})`);
      await new Promise((res) => setTimeout(res, 25));
    }
  };

  const startChild = async (grace = '300') => {
    const c = spawn(process.execPath, ['--import', 'tsx', childScript, redis.url, dataDir, grace], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(c);
    await new Promise((resolve, reject) => {
      c.stdout!.once('data', resolve);
      c.once('exit', (code) => reject(new Error(`worker child exited early (${code})`)));
    });
    return c;
  };

  it('runs a job put straight onto the queue and stores its result', async () => {
    const { id } = await client.submit('tenant-a', {
      image: IMAGE,
      command: ['sh', '-c', 'echo hi; echo err >&2; exit 3'],
    });
    const record = await client.wait(id, 20_000);
    expect(record).toMatchObject({ id, tenant: 'tenant-a', state: 'completed', attempts: 1 });
    expect(record.result).toMatchObject({ status: 'nonzero_exit', exitCode: 3, stdout: 'hi\n', stderr: 'err\n' });
    expect(record.queueMs).toBeGreaterThanOrEqual(0);
  });

  it('streams output while the job runs, then the final record', async () => {
    const { id } = await client.submit('tenant-a', {
      image: IMAGE,
      command: ['sh', '-c', 'echo one; sleep 0.3; echo two'],
    });
    await client.wait(id, 20_000);
    const r = new Redis(redis.url);
    const entries = (await r.xrange(keys.jobEvents(id), '-', '+')).map(
      ([, f]) => JSON.parse(f[1]!) as { type: string; data?: string; state?: string },
    );
    r.disconnect();
    // The queue client writes the `queued` event as the gateway does; the worker's claim writes `running`.
    expect(entries.map((e) => e.type)).toEqual(['state', 'state', 'output', 'output', 'final']);
    expect(entries.filter((e) => e.type === 'state').map((e) => e.state)).toEqual(['queued', 'running']);
    expect(entries.filter((e) => e.type === 'output').map((e) => e.data)).toEqual(['one\n', 'two\n']);
  });

  it('takes a job from the queue to its sandbox in one Redis round trip (the claim; ten before it)', async () => {
    const monitor = await monitorRedis(redis.url);
    const { id } = await client.submit('tenant-rt', { image: IMAGE, command: ['echo', 'counted'] });
    await client.wait(id, 20_000);
    await monitor.stop();
    // From the job's submission until its first output event, which the sandbox's first write sends.
    const firstOutput = monitor.commands.findIndex(
      (c) => c.args[0]?.toLowerCase() === 'xadd' && c.args[1] === keys.jobEvents(id) && c.client === 'lid:worker',
    );
    expect(firstOutput).toBeGreaterThan(0);
    const trips = monitor.roundTrips(
      monitor.commands.slice(0, firstOutput),
      (client) => client === 'lid:worker' || client === 'lid:worker-cancel', // the worker's own, not BullMQ's
      (args) => args.some((a) => a.includes(id) || a.includes('tenant-rt')),
    );
    expect(trips).toBe(1);
  });

  it('refuses a malformed queue entry for good, naming the field', async () => {
    const connection = connectRedis(redis.url, 'test-queue');
    const queue = new Queue(QUEUES.jobs, { connection, prefix: QUEUES.prefix });
    try {
      const entry = await queue.add(
        'job',
        {
          id: 'job_malformed',
          tenant: 'tenant-a',
          request: { command: ['true'] },
          createdAt: new Date().toISOString(),
        },
        { jobId: 'job_malformed', attempts: 3 },
      );
      for (let i = 0; i < 200 && !(await entry.isFailed()); i++) await new Promise((r) => setTimeout(r, 25));
      const failed = await queue.getJob('job_malformed');
      expect(failed?.failedReason).toMatch(/^invalid queue entry: request\.image: /);
      expect(failed?.attemptsMade).toBe(1); // not retried: no attempt would fix it
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('cancels a running job within a second', async () => {
    const { id } = await client.submit('tenant-a', { image: IMAGE, command: ['sleep', '30'] });
    await waitFor(id, (r) => r.state === 'running');
    const t = Date.now();
    await client.cancel(id);
    const record = await waitFor(id, (r) => r.state === 'cancelled');
    expect(Date.now() - t).toBeLessThan(1000);
    expect(record.finishedAt).not.toBeNull();
  });

  it('records why a job could not run: unknown image, command not found', async () => {
    const noImage = await client.wait(
      (await client.submit('tenant-a', { image: 'nope:1', command: ['true'] })).id,
      20_000,
    );
    expect(noImage).toMatchObject({
      state: 'error',
      error: { code: 'not_found', message: expect.stringMatching(/nope:1/) },
    });
    const noCmd = await client.wait(
      (await client.submit('tenant-a', { image: IMAGE, command: ['no-such-cmd'] })).id,
      20_000,
    );
    expect(noCmd).toMatchObject({
      state: 'error',
      error: { code: 'invalid_spec', message: expect.stringMatching(/no-such-cmd/) },
    });
    await expect(
      client.submit('tenant-a', { image: IMAGE, command: ['x'], limits: { memoryBytes: 1 } }),
    ).rejects.toThrow(/limits.memoryBytes/);
  });

  it("runs at most the tenant's concurrency at once across the workers", async () => {
    const r = new Redis(redis.url);
    await r.set(keys.tenant('solo'), tenantRecordText(newTenantRecord('solo', { concurrency: 1 }, 'no-key')));
    r.disconnect();
    const ids = await Promise.all(
      [1, 2, 3].map(async () => (await client.submit('solo', { image: IMAGE, command: ['sleep', '0.3'] })).id),
    );
    const records = await Promise.all(ids.map((id) => client.wait(id, 30_000)));
    const spans = records
      .map((rec) => [Date.parse(rec.startedAt!), Date.parse(rec.finishedAt!)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1] - 5);
  });

  it('never runs a job again once its result is stored', async () => {
    const { id } = await client.submit('tenant-a', { image: IMAGE, command: ['sh', '-c', 'echo once'] });
    const first = await client.wait(id, 20_000);
    const queue = new Queue(QUEUES.jobs, {
      connection: new Redis(redis.url, { maxRetriesPerRequest: null }),
      prefix: QUEUES.prefix,
    });
    await queue.add(
      'job',
      {
        id,
        tenant: 'tenant-a',
        request: { image: IMAGE, command: ['sh', '-c', 'echo twice'], files: [], env: {}, limits: {} },
        createdAt: first.createdAt,
      },
      { jobId: `${id}-redelivered` },
    );
    await new Promise((r) => setTimeout(r, 1000));
    await queue.close();
    expect(await client.get(id)).toEqual(first);
  });

  it('POSTs the final record to the callback URL, signed, retrying until the receiver takes it', async () => {
    const r = new Redis(redis.url);
    const tenant = newTenantRecord('hooked', { concurrency: 4 }, 'no-key');
    await r.set(keys.tenant('hooked'), tenantRecordText(tenant));
    r.disconnect();
    const signingSecret = callbackSecret(loadSigningKey(config), 'hooked', tenant.signingVersion, tenant.signingNonce);
    const received: { attempt: string; signature: string; body: string }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({
          attempt: String(req.headers['lid-delivery-attempt']),
          signature: String(req.headers['lid-signature']),
          body,
        });
        res.writeHead(received.length === 1 ? 500 : 204).end(); // the first delivery fails: it must be retried
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const { id } = await client.submit('hooked', {
        image: IMAGE,
        command: ['echo', 'called back'],
        callbackUrl: url,
      });
      await client.wait(id, 20_000);
      for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((res) => setTimeout(res, 50));
      expect(received.map((d) => d.attempt)).toEqual(['1', '2']);
      const { signature, body } = received[1]!;
      const [, t, mac] = /^t=(\d+),v1=([a-f0-9]{64})$/.exec(signature)!;
      expect(crypto.createHmac('sha256', signingSecret).update(`${t}.${body}`).digest('hex')).toBe(mac);
      expect(JSON.parse(body)).toMatchObject({
        id,
        state: 'completed',
        attempts: 1,
        result: { stdout: 'called back\n' },
      });
    } finally {
      server.close();
    }
  });

  it('closes every part when one of them fails to close, once however often it is asked', async () => {
    await worker!.close();
    worker = null;
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const failing = await LidWorker.start(loadConfig({ ...env, LID_WORKER_METRICS_PORT: '0' }), {
      redisUrl: redis.url,
      logger,
      lockDurationMs: 2000, // as the others': BullMQ's stalled check runs at most once per a worker's lock duration
    });
    const r = connectRedis(redis.url, 'test-close');
    try {
      // The runtime closes, then says it failed: every later step must still run.
      const { runtime } = (failing as unknown as { parts: { runtime: { close(): Promise<void> } } }).parts;
      const close = runtime.close.bind(runtime);
      runtime.close = async () => {
        await close();
        throw new Error('the runtime failed to close');
      };
      expect(await r.zscore(keys.workers, failing.id)).not.toBeNull();
      const metricsUrl = failing.metricsUrl!;
      expect((await fetch(metricsUrl)).status).toBe(200);

      const closing = failing.close();
      expect(failing.close()).toBe(closing);
      await closing;
      const warned = lines.map((l) => JSON.parse(l) as { msg: string; err?: { message: string } });
      expect(warned).toContainEqual(
        expect.objectContaining({
          msg: 'closing the worker: the sandbox runtime failed',
          err: expect.objectContaining({ message: 'the runtime failed to close' }),
        }),
      );
      // The steps after it ran: the node left the workers' list, its metrics server and connections are closed.
      expect(await r.zscore(keys.workers, failing.id)).toBeNull();
      expect(await r.get(keys.worker(failing.id))).toBeNull();
      await expect(fetch(metricsUrl)).rejects.toThrow();
      const clients = ((await r.client('LIST')) as string).split('\n').map((l) => /\bname=(\S*)/.exec(l)?.[1] ?? '');
      expect(clients.filter((name) => name.startsWith('lid:worker'))).toEqual([]);
    } finally {
      r.disconnect();
      worker = await start();
    }
  });

  it('finishes on another worker the job of a worker SIGKILLed mid-job', { timeout: 60_000 }, async () => {
    await worker!.close();
    worker = null;
    const doomed = await startChild();
    const { id } = await client.submit('tenant-a', { image: IMAGE, command: ['sh', '-c', 'sleep 1; echo survived'] });
    await waitFor(id, (r) => r.state === 'running');
    doomed.kill('SIGKILL');
    worker = await start();
    const record = await client.wait(id, 40_000);
    expect(record).toMatchObject({ state: 'completed', attempts: 2, result: { stdout: 'survived\n' } });
  });

  it(
    'on SIGTERM lets a running job have its grace period, then requeues it for another worker',
    { timeout: 60_000 },
    async () => {
      const stopping = await startChild('300');
      await worker!.close();
      worker = null;
      const { id } = await client.submit('tenant-a', { image: IMAGE, command: ['sh', '-c', 'sleep 2; echo moved'] });
      await waitFor(id, (r) => r.state === 'running');
      const exited = new Promise((r) => stopping.once('exit', r));
      stopping.kill('SIGTERM');
      await exited;
      expect((await client.get(id))!.state).toBe('queued');
      worker = await start();
      expect(await client.wait(id, 40_000)).toMatchObject({
        state: 'completed',
        attempts: 2,
        result: { stdout: 'moved\n' },
      });
    },
  );

  it('loses no accepted job when Redis is killed and restarts from its AOF', { timeout: 60_000 }, async () => {
    await worker!.close();
    worker = null;
    const ids = await Promise.all(
      [1, 2, 3, 4, 5].map(
        async (i) => (await client.submit('tenant-a', { image: IMAGE, command: ['echo', `job ${i}`] })).id,
      ),
    );
    await new Promise((r) => setTimeout(r, 1200)); // appendfsync everysec: what was acknowledged a second ago is on disk
    await redis.kill();
    await redis.restart();
    worker = await start();
    const records = await Promise.all(ids.map((id) => client.wait(id, 40_000)));
    expect(records.map((r) => r.result?.stdout)).toEqual(['job 1\n', 'job 2\n', 'job 3\n', 'job 4\n', 'job 5\n']);
  });
});
