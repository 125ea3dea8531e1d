// A worker node: a BullMQ consumer of the `lid-jobs` queue whose concurrency follows the node's capacity. Each job
// runs through JobRunner in its own sandbox. Around that: a tenant's concurrency limit (a job over it waits a
// moment in the delayed set, keeping its place), cancellation (pub/sub -> abort -> the sandbox is killed), a
// heartbeat the gateway's /readyz looks for, the list of images this node offers, and a graceful stop: no new
// jobs; running ones get a grace period, then are cancelled and requeued for another worker.
import os from 'node:os';
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { loadSigningKey } from '../common/callback-secret.js';
import type { LidConfig } from '../common/config.js';
import { QueuedJobSchema } from '../common/job.js';
import { JobStore } from '../common/job-store.js';
import { CHANNELS, keys, QUEUES } from '../common/keys.js';
import { serverCaps } from '../common/limits.js';
import { createMetrics, type LidMetrics } from '../common/metrics.js';
import { connectRedis } from '../common/redis.js';
import { ATTR, inSpan, traceIdOf } from '../common/telemetry.js';
import { ImageAcquirer } from '../images/acquire.js';
import { tenantPulls } from '../images/pull-policy.js';
import { ImageStore } from '../images/store.js';
import { SandboxRuntime } from '../runtime/index.js';
import { countBatchJobEnded } from './batch-end.js';
import { Callbacks } from './callbacks.js';
import { JobRunner, WorkerStopping } from './job-runner.js';
import { serveMetrics } from './metrics-server.js';
import { traceJobs } from './job-trace.js';
import { LEASE_MS, TenantSlots } from './tenant-slots.js';
import { WorkerActivity } from './worker-activity.js';

export interface WorkerOptions {
  redisUrl: string;
  logger: Logger;
  /** How long BullMQ's lock on a job lasts without renewal: how soon a dead worker's job is retried elsewhere. */
  lockDurationMs?: number;
  /** A registry shared with the caller (`lid up`: the gateway's), who then serves it; else the worker's own. */
  metrics?: LidMetrics;
}

export interface RunningWorker {
  id: string;
  concurrency: number;
  /** Where this worker serves GET /metrics, or null (LID_WORKER_METRICS_PORT=off, port taken, shared registry). */
  metricsUrl: string | null;
  close(): Promise<void>;
}

const HEARTBEAT_MS = 5000;
const OVER_LIMIT_DELAY_MS = 100;

/** Jobs at once: LID_WORKER_CONCURRENCY, or 8 per CPU (sandboxed jobs mostly wait on their processes). */
export function nodeConcurrency(config: LidConfig): number {
  return config.workerConcurrency ?? Math.max(2, os.availableParallelism() * 8);
}

export async function startWorker(config: LidConfig, opts: WorkerOptions): Promise<RunningWorker> {
  const id = `${os.hostname()}-${process.pid}`;
  const log = opts.logger.child({ worker: id });
  const signingKey = loadSigningKey(config); // first: a missing or unsafe key file stops the worker before it starts
  const redis = connectRedis(opts.redisUrl, 'worker');
  const subscriber = connectRedis(opts.redisUrl, 'worker-cancel');
  redis.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  subscriber.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  const jobs = new JobStore(redis, config.resultTtlSeconds);
  const store = ImageStore.open(config.dataDir);
  const metrics = opts.metrics ?? createMetrics();
  const images = new ImageAcquirer(store, {
    pulls: tenantPulls(config),
    onCacheHit: () => metrics.imageCacheHits.inc(),
    onCacheMiss: () => metrics.imageCacheMisses.inc(),
  });
  metrics.onImageBytes(() => images.storedBytes());
  const runtime = await SandboxRuntime.start({
    sandboxUids: config.sandboxUids,
    cgroupParent: config.cgroupParent,
    mountDir: config.mountDir,
    threads: config.sandboxThreads,
  });
  const runner = new JobRunner(jobs, images, runtime, serverCaps(config), {
    nofile: config.rlimitNofile,
    stack: config.rlimitStack,
  });
  const slots = new TenantSlots(redis);
  const active = new Map<string, AbortController>();
  const concurrency = nodeConcurrency(config);
  const activity = new WorkerActivity(id, concurrency, redis, jobs, metrics, log);
  activity.watch(redis, 'worker');
  activity.watch(subscriber, 'worker-cancel');

  await subscriber.subscribe(CHANNELS.cancel);
  subscriber.on('message', (_channel: string, jobId: string) => active.get(jobId)?.abort(new Error('cancelled')));

  const publish = async (r: Redis) => {
    await r.zadd(keys.workers, Date.now(), id);
    const names = images.available();
    if (names.length) await r.sadd(keys.images, ...names);
    await activity.heartbeat();
  };
  await publish(redis);
  const heartbeat = setInterval(() => void publish(redis).catch(() => {}), HEARTBEAT_MS);

  async function processJob(job: Job, token?: string): Promise<string> {
    const parsed = QueuedJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed queue entry: ${parsed.error.issues[0]?.message}`);
    const queued = parsed.data;
    const jlog = log.child({ jobId: queued.id, tenant: queued.tenant, traceId: traceIdOf(queued.traceparent) });
    if (!(await slots.take(queued.tenant, queued.id))) {
      await job.moveToDelayed(Date.now() + OVER_LIMIT_DELAY_MS, token);
      throw new DelayedError(); // the tenant is at its concurrency: keep the job's place, try again shortly
    }
    // The first time a job leaves the queue it stops counting against the tenant's max-queued quota.
    if (await redis.set(keys.jobDequeued(queued.id), '1', 'EX', config.resultTtlSeconds, 'NX')) {
      await redis.decr(keys.tenantQueued(queued.tenant));
    }
    const abort = new AbortController();
    active.set(queued.id, abort);
    await activity.started(queued.id);
    const refresh = setInterval(() => void slots.refresh(queued.tenant, queued.id).catch(() => {}), LEASE_MS / 3);
    try {
      jlog.info({ image: queued.request.image }, 'job started');
      const outcome = await runner.run(queued, abort.signal);
      jlog.info({ outcome }, 'job ended');
      if (queued.batchId && outcome !== 'skipped') {
        await countBatchJobEnded(redis, jobs, callbacks, queued.batchId, config.resultTtlSeconds).catch((e: Error) =>
          jlog.warn({ err: e.message }, 'batch callback not queued'),
        );
      }
      if (queued.request.callbackUrl && outcome !== 'skipped') {
        const record = await jobs.get(queued.id);
        // A failure to queue the delivery must not fail the job, whose result is already stored.
        if (record)
          await inSpan('callback', { [ATTR.callbackHost]: new URL(queued.request.callbackUrl).host }, () =>
            callbacks.send(queued.request.callbackUrl!, record),
          ).catch((e: Error) => jlog.warn({ err: e.message }, 'callback not queued'));
      }
      return outcome;
    } finally {
      clearInterval(refresh);
      active.delete(queued.id);
      await activity.left(queued.id);
      await slots.release(queued.tenant, queued.id).catch(() => {});
    }
  }

  const queueConnection = connectRedis(opts.redisUrl, 'worker-queue');
  queueConnection.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  const callbackConnection = queueConnection.duplicate();
  callbackConnection.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  activity.watch(queueConnection, 'worker-queue');
  activity.watch(callbackConnection, 'worker-callbacks');
  const callbacks = new Callbacks(redis, callbackConnection, log, { policy: config.egress }, signingKey);
  const worker = new Worker(QUEUES.jobs, traceJobs(processJob), {
    connection: queueConnection,
    prefix: QUEUES.prefix,
    concurrency,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: Math.min(30_000, opts.lockDurationMs ?? 30_000),
    maxStalledCount: 3,
  });
  worker.on('failed', (job, err) => {
    if (!job || err instanceof DelayedError || err.name === 'DelayedError') return;
    const last = job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
    log.warn(
      {
        jobId: job.id,
        tenant: (job.data as { tenant?: string }).tenant,
        traceId: traceIdOf((job.data as { traceparent?: string }).traceparent),
        attempt: job.attemptsMade,
        err: err.message,
      },
      last ? 'job failed for good' : 'job failed; will retry',
    );
    if (!last || !job.id) return;
    const request = (job.data as { request?: { callbackUrl?: string } }).request;
    void runner
      .giveUp(job.id, err)
      .then(async () => {
        await activity.recordEnd(job.id!);
        const record = await jobs.get(job.id!);
        if (record && request?.callbackUrl) await callbacks.send(request.callbackUrl, record);
        const batchId = (job.data as { batchId?: string }).batchId;
        if (batchId) await countBatchJobEnded(redis, jobs, callbacks, batchId, config.resultTtlSeconds);
      })
      .catch(() => {});
  });
  worker.on('error', (e) => log.warn({ err: e.message }, 'worker error'));
  log.info({ concurrency }, 'worker started');
  // A shared registry is served by its owner; otherwise this worker answers scrapes itself.
  const metricsServer =
    opts.metrics || config.workerMetricsPort === 'off'
      ? null
      : await serveMetrics(metrics.registry, config.workerMetricsPort, {
          host: config.metricsHost,
          token: config.metricsToken,
          logger: log,
        });

  let closing: Promise<void> | null = null;
  return {
    id,
    concurrency,
    metricsUrl: metricsServer?.url ?? null,
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        const grace = setTimeout(() => {
          for (const a of active.values()) a.abort(new WorkerStopping('the worker is stopping'));
        }, config.shutdownGraceMs);
        try {
          await worker.close(); // takes no new job; resolves once the running ones are done (or aborted)
        } finally {
          clearTimeout(grace);
        }
        await runtime.close();
        await callbacks.close();
        await redis.zrem(keys.workers, id).catch(() => {});
        await activity.close();
        await metricsServer?.close();
        await Promise.allSettled([redis.quit(), subscriber.quit(), queueConnection.quit(), callbackConnection.quit()]);
        log.info('worker stopped');
      })();
      return closing;
    },
  };
}
