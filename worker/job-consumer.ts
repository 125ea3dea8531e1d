// The BullMQ processor of a worker node: one queue entry from the moment BullMQ hands it over until it is done.
// It parses the entry once (a malformed one is an UnrecoverableError naming the field: retrying would not fix it),
// holds the job to this worker's caps, claims it (worker/claim.ts: one Lua script), runs a claimed job through
// JobRunner while keeping its tenant slot alive, and announces every end: the job's callback and its batch's count.
// It also answers BullMQ's `failed` event: after the last attempt failed on host problems the record says so, and
// the end is announced as any other.
//
// Cancellation: each job in hand has an AbortController, registered before the claim, so that a cancel published
// after the claim checked the flag still reaches the run; abortAll is the stopping worker's (WorkerStopping).
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { type JobLimits, type QueuedJob, QueuedJobSchema } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import { retryWhileRedisFull } from '../common/redis.js';
import { ATTR, inSpan, traceIdOf } from '../common/telemetry.js';
import { parseOrThrow } from '../common/validation.js';
import { countBatchJobEnded } from './batch-end.js';
import type { Callbacks } from './callbacks.js';
import type { Claim, HeldEntry, JobClaims, Refusal } from './claim.js';
import { type JobRunner, type Outcome, WorkerStopping } from './job-runner.js';
import { traceJobs } from './job-trace.js';
import type { NodePresence } from './node-presence.js';
import { LEASE_MS, type TenantSlots } from './tenant-slots.js';

/** How long a job over its tenant's concurrency waits in the delayed set before it is tried again. */
const OVER_LIMIT_DELAY_MS = 100;

export interface ConsumerParts {
  redis: Redis;
  jobs: JobStore;
  claims: JobClaims;
  runner: JobRunner;
  slots: TenantSlots;
  presence: NodePresence;
  callbacks: Callbacks;
  resultTtlSeconds: number;
  log: Logger;
}

export class JobConsumer {
  private readonly active = new Map<string, AbortController>();
  /** Each entry as parsed when it was taken, for the `failed` event that BullMQ emits with the same Job. */
  private readonly parsed = new WeakMap<Job, QueuedJob>();

  constructor(private readonly p: ConsumerParts) {}

  /** The processor to give BullMQ's Worker: each take of an entry runs in a job.process span of the job's trace. */
  readonly process = traceJobs((job: Job, token?: string) => this.take(job, token));

  /** Aborts the job if it is in hand here (a tenant's cancel, from the cancel channel). */
  cancel(jobId: string): void {
    this.active.get(jobId)?.abort(new Error('cancelled'));
  }

  /** Aborts every job in hand: the worker is stopping, and they go back to the queue for another worker. */
  abortAll(reason: WorkerStopping): void {
    for (const a of this.active.values()) a.abort(reason);
  }

  private async take(job: Job, token?: string): Promise<Outcome> {
    const queued = this.parse(job);
    if (!job.id || !token) throw new Error('BullMQ handed over a job without its id or lock token');
    const log = this.p.log.child({ jobId: queued.id, tenant: queued.tenant, traceId: traceIdOf(queued.traceparent) });
    const { limits, refusal } = this.p.runner.fitToCaps(queued);
    const abort = new AbortController();
    this.active.set(queued.id, abort);
    try {
      const claim = await this.claim(queued, { id: job.id, token }, refusal, abort.signal);
      switch (claim.outcome) {
        case 'over_limit':
          await job.moveToDelayed(Date.now() + OVER_LIMIT_DELAY_MS, token);
          throw new DelayedError(); // the tenant is at its concurrency: keep the job's place, try again shortly
        case 'skip':
        case 'lost':
          return 'skipped';
        case 'cancelled':
        case 'refused':
          log.info({ outcome: claim.outcome }, 'job ended before it ran');
          await this.p.presence.recordEnd(queued.id);
          await this.announce(queued, log);
          return claim.outcome === 'cancelled' ? 'cancelled' : 'done';
        case 'claimed':
          return await this.run(queued, claim, limits!, abort.signal, log);
      }
    } finally {
      this.active.delete(queued.id);
    }
  }

  private parse(job: Job): QueuedJob {
    try {
      const queued = parseOrThrow(QueuedJobSchema, job.data, 'queue entry');
      this.parsed.set(job, queued);
      return queued;
    } catch (e) {
      throw new UnrecoverableError((e as Error).message);
    }
  }

  /**
   * The claim, again while Redis is full (it then writes nothing): the job keeps its place and waits for memory, as
   * its result would. A stopping worker stops waiting; the job stays queued for another.
   */
  private claim(queued: QueuedJob, entry: HeldEntry, refusal: Refusal | null, signal: AbortSignal): Promise<Claim> {
    return retryWhileRedisFull(() => {
      if (signal.aborted && signal.reason instanceof WorkerStopping) throw signal.reason;
      return this.p.claims.claim(queued, entry, refusal);
    });
  }

  private async run(
    queued: QueuedJob,
    claim: Extract<Claim, { outcome: 'claimed' }>,
    limits: JobLimits,
    signal: AbortSignal,
    log: Logger,
  ): Promise<Outcome> {
    const { presence, slots, runner } = this.p;
    presence.started();
    const refresh = setInterval(() => void slots.refresh(queued.tenant, queued.id).catch(() => {}), LEASE_MS / 3);
    try {
      log.info({ image: queued.request.image }, 'job started');
      const outcome = await runner.run(queued, claim.record, limits, signal);
      log.info({ outcome }, 'job ended');
      await this.announce(queued, log);
      return outcome;
    } finally {
      clearInterval(refresh);
      await presence.left(queued.id);
      await slots.release(queued.tenant, queued.id).catch(() => {});
    }
  }

  /**
   * What a job's end sets off beyond its record: its batch's count (the worker ending a batch's last job sends the
   * batch's callback) and its own callback. A failure to queue either is logged: the job's result is stored.
   */
  private async announce(queued: QueuedJob, log: Logger): Promise<void> {
    const { redis, jobs, callbacks, resultTtlSeconds } = this.p;
    if (queued.batchId) {
      await countBatchJobEnded(redis, jobs, callbacks, queued.batchId, resultTtlSeconds).catch((e: Error) =>
        log.warn({ err: e.message }, 'batch callback not queued'),
      );
    }
    const url = queued.request.callbackUrl;
    if (!url) return;
    await jobs
      .get(queued.id)
      .then(
        (record) =>
          record && inSpan('callback', { [ATTR.callbackHost]: new URL(url).host }, () => callbacks.send(url, record)),
      )
      .catch((e: Error) => log.warn({ err: e.message }, 'callback not queued'));
  }

  /** BullMQ's `failed` event: logs every failed attempt; after the last one, ends the job `error` and announces it. */
  readonly onFailed = (job: Job | undefined, err: Error): void => {
    if (!job || err instanceof DelayedError || err.name === 'DelayedError') return;
    const last =
      job.attemptsMade >= (job.opts.attempts ?? 1) ||
      err instanceof UnrecoverableError ||
      err.name === 'UnrecoverableError';
    // A job failed in stalled checks was never taken by this worker's processor: its entry is parsed here.
    const queued = this.parsed.get(job) ?? QueuedJobSchema.safeParse(job.data).data;
    const log = this.p.log.child({
      jobId: queued?.id ?? job.id,
      tenant: queued?.tenant,
      traceId: traceIdOf(queued?.traceparent),
    });
    log.warn({ attempt: job.attemptsMade, err: err.message }, last ? 'job failed for good' : 'job failed; will retry');
    if (!last || !job.id) return;
    const id = queued?.id ?? job.id;
    void (async () => {
      await this.p.runner.giveUp(id, err);
      await this.p.presence.recordEnd(id);
      if (queued) await this.announce(queued, log);
    })().catch((e: Error) => log.warn({ err: e.message }, 'the failed job could not be recorded'));
  };
}
