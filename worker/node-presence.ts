// How a worker node shows itself, beside running jobs: a heartbeat every HEARTBEAT_MS (its entry in keys.workers,
// which the gateway's /readyz looks for; the images it offers, in keys.images; its capacity record, keys.worker(id),
// which the dashboard lists), its Prometheus gauges and job-end metrics, and the dashboard's list of jobs that just
// ended (common/activity.ts). A job joins the running set in its claim (worker/claim.ts) and leaves it here. Every
// call is best effort: a metric or a dashboard entry is never worth failing or delaying a job for.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { markEnded, publishWorkerInfo } from '../common/activity.js';
import { FINAL_STATES } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import { keys } from '../common/keys.js';
import type { LidMetrics } from '../common/metrics.js';
import { observeJobEnd } from './job-metrics.js';

/** Between heartbeats; the gateway takes a worker for gone after three missed ones. */
export const HEARTBEAT_MS = 5000;

export interface PresenceOptions {
  id: string;
  concurrency: number;
  redis: Redis;
  jobs: JobStore;
  metrics: LidMetrics;
  /** The image names this node offers now (read at each heartbeat: the store grows as images are built). */
  offeredImages: () => string[];
  log: Logger;
}

export class NodePresence {
  private running = 0;
  private readonly startedAt = new Date().toISOString();
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(private readonly o: PresenceOptions) {
    o.metrics.capacity.set({ worker: o.id }, o.concurrency);
    this.showLoad();
  }

  /** Shows the node now (so that it is ready once this resolves), then at every heartbeat. */
  async start(): Promise<void> {
    await this.beat();
    this.heartbeat ??= setInterval(() => void this.beat().catch(() => {}), HEARTBEAT_MS);
  }

  private async beat(): Promise<void> {
    const { redis, id, concurrency } = this.o;
    await redis.zadd(keys.workers, Date.now(), id);
    const names = this.o.offeredImages();
    if (names.length) await redis.sadd(keys.images, ...names);
    await publishWorkerInfo(redis, { id, concurrency, running: this.running, startedAt: this.startedAt });
  }

  /** A claimed job starts running here. */
  started(): void {
    this.running++;
    this.showLoad();
  }

  /** The job left this worker: ended for good (its final record is stored) or handed back to the queue. */
  async left(jobId: string): Promise<void> {
    this.running--;
    this.showLoad();
    await this.recordEnd(jobId);
  }

  /**
   * Observes a job whose final record is stored (after a run, a claim that cancelled or refused it, or its last
   * attempt failing), and takes it off the running set.
   */
  async recordEnd(jobId: string): Promise<void> {
    const { redis, jobs, metrics, log } = this.o;
    try {
      const record = await jobs.get(jobId);
      const final = record !== null && FINAL_STATES.includes(record.state);
      // Observed once per job: whichever call first moves it off the running set or into the recent list.
      if (final && (await redis.lpos(keys.recent, jobId)) === null) observeJobEnd(metrics, record);
      await markEnded(redis, jobId, final);
    } catch (err) {
      log.debug({ err: (err as Error).message, jobId }, 'job end not recorded for the dashboard');
    }
  }

  /** No more heartbeats: the first step of a stop, so that gateways stop counting on this node. */
  stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Leaves the list of workers and removes the capacity record, once the node's jobs have left it. */
  async leave(): Promise<void> {
    this.stopHeartbeat();
    const { redis, id } = this.o;
    await redis.multi().zrem(keys.workers, id).del(keys.worker(id)).exec();
  }

  private showLoad(): void {
    const { metrics, id, concurrency } = this.o;
    metrics.running.set({ worker: id }, this.running);
    metrics.freeSlots.set({ worker: id }, concurrency - this.running);
  }
}
