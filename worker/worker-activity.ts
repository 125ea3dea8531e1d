// What a worker reports about itself, beside running jobs: its Prometheus gauges and job-end metrics, and the
// Redis bookkeeping the dashboard reads (common/activity.ts: running set, recent list, its own capacity record).
// Kept out of worker.ts so the consumer loop reads as the job's path; every call here is best effort, since a
// metric or a dashboard entry is never worth failing or delaying a job for.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { markEnded, markRunning, publishWorkerInfo } from '../common/activity.js';
import { FINAL_STATES } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import { keys } from '../common/keys.js';
import type { LidMetrics } from '../common/metrics.js';
import { observeJobEnd } from './job-metrics.js';

export class WorkerActivity {
  private running = 0;
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly id: string,
    private readonly concurrency: number,
    private readonly redis: Redis,
    private readonly jobs: JobStore,
    readonly metrics: LidMetrics,
    private readonly log: Logger,
  ) {
    metrics.capacity.set({ worker: id }, concurrency);
    this.showLoad();
  }

  /** Counts a Redis connection's errors under its component name (the logging stays with the caller). */
  watch(connection: Redis, component: string): void {
    connection.on('error', () => this.metrics.redisErrors.inc({ component }));
  }

  async started(jobId: string): Promise<void> {
    this.running++;
    this.showLoad();
    await markRunning(this.redis, jobId).catch(() => {});
  }

  /** The job left this worker: ended for good (its final record is stored) or handed back to the queue. */
  async left(jobId: string): Promise<void> {
    this.running--;
    this.showLoad();
    await this.recordEnd(jobId);
  }

  /** Observes a job whose final record is stored (also after its last attempt failed, outside processJob). */
  async recordEnd(jobId: string): Promise<void> {
    try {
      const record = await this.jobs.get(jobId);
      const final = record !== null && FINAL_STATES.includes(record.state);
      // Observed once per job: whichever call first moves it off the running set or into the recent list.
      if (final && (await this.redis.lpos(keys.recent, jobId)) === null) observeJobEnd(this.metrics, record);
      await markEnded(this.redis, jobId, final);
    } catch (err) {
      this.log.debug({ err: (err as Error).message, jobId }, 'job end not recorded for the dashboard');
    }
  }

  /** Part of each heartbeat: the capacity record the dashboard lists, expiring if the worker dies. */
  async heartbeat(): Promise<void> {
    await publishWorkerInfo(this.redis, {
      id: this.id,
      concurrency: this.concurrency,
      running: this.running,
      startedAt: this.startedAt,
    });
  }

  async close(): Promise<void> {
    await this.redis.del(keys.worker(this.id)).catch(() => {});
  }

  private showLoad(): void {
    this.metrics.running.set({ worker: this.id }, this.running);
    this.metrics.freeSlots.set({ worker: this.id }, this.concurrency - this.running);
  }
}
