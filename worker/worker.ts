// A worker node, as BullMQ's Worker is one: a class built from named parts, started by LidWorker.start and stopped
// by close().
//   consumer   worker/job-consumer.ts, the processor of the `lid-jobs` queue (parse, claim, run, announce), whose
//              concurrency follows the node's capacity; a tenant's cancel reaches it through the cancel channel
//   presence   worker/node-presence.ts: heartbeat, the images this node offers, running counts and job-end metrics
//   callbacks  worker/callbacks.ts: deliveries of job and batch callbacks, on their own queue
//   metrics    worker/metrics-server.ts: GET /metrics, unless the caller serves a shared registry
//   runtime    the sandbox runtime (runtime/), and the image store jobs' layers come from (images/)
// close() stops gracefully: no new jobs; running ones get a grace period, then are cancelled and requeued for
// another worker; then every part closes, in order, each step in its own try/catch so one failure does not skip the
// rest. It is one memoised promise: asking again waits for the same stop.
import os from 'node:os';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { loadSigningKey } from '../common/callback-secret.js';
import type { LidConfig } from '../common/config.js';
import { JobStore } from '../common/job-store.js';
import { CHANNELS, QUEUES } from '../common/keys.js';
import { serverCaps } from '../common/limits.js';
import { createMetrics, type LidMetrics } from '../common/metrics.js';
import { sandboxNetworkOptions, serviceAddresses } from '../common/net-settings.js';
import { connectRedis } from '../common/redis.js';
import { ImageAcquirer } from '../images/acquire.js';
import { tenantPulls } from '../images/pull-policy.js';
import { ImageStore } from '../images/store.js';
import { SandboxRuntime } from '../runtime/index.js';
import { Callbacks } from './callbacks.js';
import { JobClaims } from './claim.js';
import { JobConsumer } from './job-consumer.js';
import { JobRunner, WorkerStopping } from './job-runner.js';
import { type MetricsServer, serveMetrics } from './metrics-server.js';
import { NodePresence } from './node-presence.js';
import { TenantSlots } from './tenant-slots.js';

export interface WorkerOptions {
  redisUrl: string;
  logger: Logger;
  /** How long BullMQ's lock on a job lasts without renewal: how soon a dead worker's job is retried elsewhere. */
  lockDurationMs?: number;
  /** A registry shared with the caller (`lid up`: the gateway's), who then serves it; else the worker's own. */
  metrics?: LidMetrics;
}

/** Jobs at once: LID_WORKER_CONCURRENCY, or 8 per CPU (sandboxed jobs mostly wait on their processes). */
export function nodeConcurrency(config: LidConfig): number {
  return config.workerConcurrency ?? Math.max(2, os.availableParallelism() * 8);
}

/** The Redis connections a worker holds, by what they are for (each named lid:<purpose> in CLIENT LIST). */
interface Connections {
  /** Records, events, claims, presence, callbacks' queue. */
  worker: Redis;
  /** The cancel channel's subscription. */
  cancel: Redis;
  /** BullMQ's consumer of the jobs queue (it duplicates it for its blocking reads). */
  queue: Redis;
  /** BullMQ's consumer of the callbacks queue. */
  callbacks: Redis;
}

interface Parts {
  connections: Connections;
  runtime: SandboxRuntime;
  presence: NodePresence;
  consumer: JobConsumer;
  callbacks: Callbacks;
  queueWorker: Worker;
  metricsServer: MetricsServer | null;
}

export class LidWorker {
  private closing: Promise<void> | null = null;
  /** Filled in by assemble, part by part: close() closes whichever exist, also after a start that failed. */
  private readonly parts: Partial<Parts> = {};

  private constructor(
    readonly id: string,
    readonly concurrency: number,
    private readonly config: LidConfig,
    private readonly opts: WorkerOptions,
    private readonly log: Logger,
  ) {}

  /** Where this worker serves GET /metrics, or null (LID_WORKER_METRICS_PORT=off, port taken, shared registry). */
  get metricsUrl(): string | null {
    return this.parts.metricsServer?.url ?? null;
  }

  static async start(config: LidConfig, opts: WorkerOptions): Promise<LidWorker> {
    const id = `${os.hostname()}-${process.pid}`;
    const log = opts.logger.child({ worker: id });
    const signingKey = loadSigningKey(config); // first: a missing or unsafe key file stops the worker before it starts
    const worker = new LidWorker(id, nodeConcurrency(config), config, opts, log);
    try {
      await worker.assemble(signingKey);
    } catch (e) {
      await worker.close(); // nothing of a worker that did not start may keep the process alive
      throw e;
    }
    log.info({ concurrency: worker.concurrency }, 'worker started');
    return worker;
  }

  private async assemble(signingKey: Buffer): Promise<void> {
    const { config, opts, log, parts } = this;
    const metrics = opts.metrics ?? createMetrics();
    const open = (purpose: string) => {
      const connection = connectRedis(opts.redisUrl, purpose);
      connection.on('error', (e) => log.warn({ err: e.message, purpose }, 'redis error'));
      connection.on('error', () => metrics.redisErrors.inc({ component: purpose }));
      return connection;
    };
    const connections = (parts.connections = {
      worker: open('worker'),
      cancel: open('worker-cancel'),
      queue: open('worker-queue'),
      callbacks: open('worker-callbacks'),
    });
    const redis = connections.worker;
    const runtime = (parts.runtime = await SandboxRuntime.start({
      sandboxUids: config.sandboxUids,
      cgroupParent: config.cgroupParent,
      mountDir: config.mountDir,
      threads: config.sandboxThreads,
      // Set up on the first networked job; Redis and the gateway stay out of every sandbox's reach.
      network: sandboxNetworkOptions(config, await serviceAddresses([opts.redisUrl, config.gatewayUrl])),
    }));
    const jobs = new JobStore(redis, config.resultTtlSeconds);
    const images = new ImageAcquirer(ImageStore.open(config.dataDir), {
      pulls: tenantPulls(config),
      onCacheHit: () => metrics.imageCacheHits.inc(),
      onCacheMiss: () => metrics.imageCacheMisses.inc(),
    });
    metrics.onImageBytes(() => images.storedBytes());
    const presence = (parts.presence = new NodePresence({
      id: this.id,
      concurrency: this.concurrency,
      redis,
      jobs,
      metrics,
      offeredImages: () => images.available(),
      log,
    }));
    const callbacks = (parts.callbacks = new Callbacks(
      redis,
      connections.callbacks,
      log,
      { policy: config.egress },
      signingKey,
    ));
    const runner = new JobRunner(jobs, images, runtime, serverCaps(config), {
      nofile: config.rlimitNofile,
      stack: config.rlimitStack,
    });
    const consumer = (parts.consumer = new JobConsumer({
      redis,
      jobs,
      claims: new JobClaims(redis, config.resultTtlSeconds),
      runner,
      slots: new TenantSlots(redis),
      presence,
      callbacks,
      resultTtlSeconds: config.resultTtlSeconds,
      log,
    }));

    await connections.cancel.subscribe(CHANNELS.cancel);
    connections.cancel.on('message', (_channel: string, jobId: string) => consumer.cancel(jobId));
    await presence.start(); // ready (the gateway's /readyz) before the first job is taken

    const lockDuration = opts.lockDurationMs ?? 30_000;
    const queueWorker = (parts.queueWorker = new Worker(QUEUES.jobs, consumer.process, {
      connection: connections.queue,
      prefix: QUEUES.prefix,
      concurrency: this.concurrency,
      lockDuration,
      stalledInterval: Math.min(30_000, lockDuration),
      maxStalledCount: 3,
    }));
    queueWorker.on('failed', consumer.onFailed);
    queueWorker.on('error', (e) => log.warn({ err: e.message }, 'worker error'));
    // A shared registry is served by its owner; otherwise this worker answers scrapes itself.
    if (!opts.metrics && config.workerMetricsPort !== 'off') {
      parts.metricsServer = await serveMetrics(metrics.registry, config.workerMetricsPort, {
        host: config.metricsHost,
        token: config.metricsToken,
        logger: log,
      });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const [what, step] of this.closeSteps()) {
        try {
          await step();
        } catch (err) {
          this.log.warn({ err }, `closing the worker: ${what} failed`);
        }
      }
      this.log.info('worker stopped');
    })();
    return this.closing;
  }

  /** In order: stop showing as ready, drain the queue, then close every part; the connections they use last. */
  private closeSteps(): [string, () => unknown][] {
    const { connections, runtime, presence, consumer, callbacks, queueWorker, metricsServer } = this.parts;
    return [
      ['the heartbeat', () => presence?.stopHeartbeat()],
      ['the queue consumer', () => queueWorker && consumer && this.drain(queueWorker, consumer)],
      ['the sandbox runtime', () => runtime?.close()],
      ['the callbacks', () => callbacks?.close()],
      ['the node presence', () => presence?.leave()],
      ['the metrics server', () => metricsServer?.close()],
      ...Object.entries(connections ?? {}).map(([purpose, c]: [string, Redis]): [string, () => unknown] => [
        `the ${purpose} connection`,
        () => c.quit(),
      ]),
    ];
  }

  /** Takes no new job; running ones get LID_SHUTDOWN_GRACE_MS, then are aborted and go back to the queue. */
  private async drain(queueWorker: Worker, consumer: JobConsumer): Promise<void> {
    const grace = setTimeout(
      () => consumer.abortAll(new WorkerStopping('the worker is stopping')),
      this.config.shutdownGraceMs,
    );
    try {
      await queueWorker.close(); // resolves once the running jobs are done (or aborted)
    } finally {
      clearTimeout(grace);
    }
  }
}
