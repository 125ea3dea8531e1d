// Putting validated jobs on the queue, for every producer: the gateway (gateway/submission.ts; around it the gateway
// adds Idempotency-Keys, the rate quota, the image check, the tenant's ceilings under the server caps and a 429 for
// max queued) and the queue client (common/queue-client.ts, whose header says what it checks). One core, so that a
// job queued either way looks the same to the workers and to readers. Issue 13 replaces the fair-share priority:
// fairPriority below is its one home.
//
// Two steps, so that a caller can decide in between (the gateway claims an Idempotency-Key there):
//   reserve  counts the jobs into the tenant's queued counter (keys.tenantQueued), refused with queue_full when they
//            would go over the tenant's max queued; names them (newJobId). Their positions in the tenant's queue
//            give their fair-share priority (fairPriority, below).
//   commit   writes each record (state queued) and its `queued` event, and only then adds the jobs to BullMQ (tagged
//            with their batch, when they are one), so a worker never takes a job that has no record. If the add
//            fails the records are marked `error` and the reservation is given back.
//   abandon  gives the reservation back unused.
//
// When Redis is full (maxmemory, noeviction) the writes that would undo a half-done submission are refused too:
// the records are then deleted (DEL is allowed on a full Redis) and the reservation is given back by a script
// flagged allow-oom (Redis 7), which a full Redis still runs: a DECRBY of an existing counter frees memory rather
// than taking any, and the tenant's queued count must not keep a job that never was. Where the script cannot run
// (a Redis before 7), the plain DECRBY is retried in the background until memory frees. The Redis error itself goes
// up unchanged (the gateway answers it 503 "Redis is full").
import crypto from 'node:crypto';
import type { Attributes, Span } from '@opentelemetry/api';
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { LidError } from './errors.js';
import type { JobRecord, JobRequest, QueuedJob } from './job.js';
import type { JobStore } from './job-store.js';
import { keys } from './keys.js';
import { isRedisFull } from './redis.js';
import { ATTR, inSpan, limitAttributes, spanTraceId, traceparentOf } from './telemetry.js';

/** Every queued job's BullMQ options: three attempts on host failures, with backoff; 1000 ended entries kept. */
export const JOB_OPTIONS = Object.freeze({
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: 1000,
  removeOnFail: 1000,
} as const satisfies JobsOptions);

const MAX_PRIORITY = 2_097_151; // BullMQ's largest priority (lowest urgency): 2^21 - 1

/**
 * Fair share across tenants. BullMQ serves the lowest priority number first (FIFO among equals), and a job's number
 * grows with its position in its own tenant's queue: the k-th waiting job of every tenant gets about 10 * k. So the
 * queue interleaves tenants, serving everyone's 1st job, then everyone's 2nd, and so on: a tenant with 10,000 jobs
 * waiting does not delay another tenant's first job by more than one job per busy tenant. The request's own priority
 * (1..10, 10 most urgent) only reorders a tenant's neighbouring positions (it adds 0..9), never lets it jump ahead of
 * other tenants' earlier positions. Positions are taken at submit and not renumbered as jobs start, so the share is
 * approximate (a tenant's new job may overtake its own older ones), which does not matter for fairness between
 * tenants. Tenants' maxQueued stays under 200,000 so that this never reaches MAX_PRIORITY and is clamped.
 */
export function fairPriority(positionInTenantQueue: number, requested = 5): number {
  return Math.min(MAX_PRIORITY, Math.max(1, positionInTenantQueue * 10 + (10 - requested)));
}

/** `job_` + 20 base64url characters (15 random bytes). */
export function newJobId(): string {
  return `job_${crypto.randomBytes(15).toString('base64url')}`;
}

/** How long a reservation refused by a full Redis is retried in the background (Redis before 7 only). */
const RELEASE_RETRY_MS = 15 * 60_000;

// KEYS[1] the tenant's queued counter; ARGV[1] how many to give back. allow-oom: see the top of this file.
const GIVE_BACK = `#!lua flags=allow-oom
return redis.call('DECRBY', KEYS[1], ARGV[1])`;

/** What the submitter writes with: the producer's connection, its BullMQ queue of jobs and its job store. */
export interface SubmitterDeps {
  redis: Redis;
  queue: Queue;
  jobs: JobStore;
  /** Where a reservation that could not be given back is reported; nowhere when absent. */
  logger?: Logger;
}

/** The tenant as the submitter needs it: its name and how many jobs it may have waiting. */
export interface QueueingTenant {
  name: string;
  maxQueued: number;
}

export interface CommitOptions {
  /** The caller's trace, continued when no span is active (the gateway's request span is). */
  traceparent?: string | undefined;
  /** The batch the jobs are, for the worker that ends the last of them. */
  batchId?: string | undefined;
}

export class JobSubmitter {
  constructor(private readonly deps: SubmitterDeps) {}

  /**
   * Counts the jobs against the tenant's max queued and names them. Over it: a LidError queue_full (details:
   * maxQueued, queued, requested), and nothing is counted.
   */
  async reserve(tenant: QueueingTenant, requests: JobRequest[]): Promise<Reservation> {
    const { redis } = this.deps;
    const n = requests.length;
    const count = await redis.incrby(keys.tenantQueued(tenant.name), n);
    if (count > tenant.maxQueued) {
      await redis.decrby(keys.tenantQueued(tenant.name), n);
      const waiting = count - n;
      throw new LidError(
        'queue_full',
        `tenant ${tenant.name} may have ${tenant.maxQueued} jobs queued and has ${waiting}: ` +
          `${n === 1 ? 'this job does' : `these ${n} jobs do`} not fit; retry when some have started`,
        { maxQueued: tenant.maxQueued, queued: waiting, requested: n },
      );
    }
    return new Reservation(this.deps, tenant.name, requests, count);
  }
}

/** Jobs counted into their tenant's queue and named, not yet queued: commit them or abandon them. */
export class Reservation {
  readonly ids: string[];
  private settled = false;

  constructor(
    private readonly deps: SubmitterDeps,
    private readonly tenant: string,
    private readonly requests: JobRequest[],
    /** The tenant's queued count including these jobs: they hold positions last - n + 1 .. last. */
    private readonly last: number,
  ) {
    this.ids = requests.map(() => newJobId());
  }

  /** Gives the reservation back without queueing anything. */
  async abandon(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.release();
  }

  /**
   * Writes the records, then queues the jobs, in an `enqueue` span: the records name its trace, and the queued jobs
   * carry a traceparent naming it, so the worker's spans continue the trace. Without a tracing SDK the span is a
   * no-op and the caller's traceparent, if any, is passed on as it came.
   */
  async commit(opts: CommitOptions = {}): Promise<JobRecord[]> {
    return inSpan('enqueue', this.spanAttributes(), (span) => this.commitIn(span, opts));
  }

  /** One job's enqueue span carries its id (so it is part of the job's timeline); a batch's counts its jobs. */
  private spanAttributes(): Attributes {
    const [only] = this.requests;
    if (this.requests.length !== 1 || !only)
      return { [ATTR.tenant]: this.tenant, [ATTR.batchSize]: this.requests.length };
    return {
      [ATTR.jobId]: this.ids[0]!,
      [ATTR.tenant]: this.tenant,
      [ATTR.image]: only.image,
      ...limitAttributes(only.limits),
    };
  }

  private async commitIn(span: Span, { traceparent: given, batchId }: CommitOptions): Promise<JobRecord[]> {
    this.settled = true;
    const traceId = spanTraceId(span);
    const traceparent = traceparentOf(span) ?? given;
    const createdAt = new Date().toISOString();
    const n = this.requests.length;
    const records = this.requests.map((request, i): JobRecord => ({
      id: this.ids[i]!,
      tenant: this.tenant,
      image: request.image,
      state: 'queued',
      createdAt,
      startedAt: null,
      finishedAt: null,
      queueMs: null,
      attempts: 0,
      traceId,
      ...(request.metadata ? { metadata: request.metadata } : {}),
      network: request.network,
    }));
    const entries = this.requests.map((request, i) => {
      // The entry's createdAt is its record's: the worker's queue-wait span starts there.
      const data: QueuedJob = {
        id: this.ids[i]!,
        tenant: this.tenant,
        request,
        createdAt,
        ...(traceparent ? { traceparent } : {}),
        ...(batchId ? { batchId } : {}),
      };
      const priority = fairPriority(this.last - n + 1 + i, request.priority);
      return { name: 'job', data, opts: { ...JOB_OPTIONS, jobId: this.ids[i]!, priority } };
    });
    const { queue, jobs } = this.deps;
    try {
      await Promise.all(
        records.map(async (r) => {
          await jobs.create(r);
          await jobs.emit(r.id, { type: 'state', state: 'queued', at: r.createdAt });
        }),
      );
      if (entries.length === 1) await queue.add(entries[0]!.name, entries[0]!.data, entries[0]!.opts);
      else await queue.addBulk(entries);
    } catch (e) {
      await this.failAll(records, `could not queue the job: ${(e as Error).message}`);
      if (isRedisFull(e)) throw e;
      throw new LidError('setup_failed', 'could not queue the job: Redis is unavailable, retry shortly', {
        cause: (e as Error).message,
      });
    }
    return records;
  }

  /**
   * Gives the reservation back, also on a full Redis (GIVE_BACK); where that script cannot run, keeps trying a plain
   * DECRBY in the background (for up to RELEASE_RETRY_MS).
   */
  private async release(): Promise<void> {
    const { redis, logger } = this.deps;
    const n = this.requests.length;
    const key = keys.tenantQueued(this.tenant);
    const giveBack = () => redis.decrby(key, n);
    try {
      await redis.eval(GIVE_BACK, 1, key, n);
      return;
    } catch (e) {
      if (isRedisFull(e)) throw e; // not expected with allow-oom: say so rather than hide it
      // A Redis without script flags (before 7): the plain command below, retried while Redis is full.
    }
    try {
      await giveBack();
    } catch (e) {
      if (!isRedisFull(e)) throw e;
      const deadline = Date.now() + RELEASE_RETRY_MS;
      const retry = (delay: number) =>
        setTimeout(() => {
          giveBack().catch((err: unknown) => {
            if (isRedisFull(err) && Date.now() < deadline) retry(Math.min(delay * 2, 10_000));
            else logger?.error({ err, tenant: this.tenant, n }, 'could not give back a queued-jobs reservation');
          });
        }, delay).unref();
      retry(500);
    }
  }

  private async failAll(records: JobRecord[], message: string): Promise<void> {
    const { jobs, logger } = this.deps;
    const finishedAt = new Date().toISOString();
    await this.release().catch(() => {});
    try {
      for (const r of records) {
        const failed = await jobs.update(r.id, (current) => ({
          ...current,
          state: 'error',
          finishedAt,
          error: { code: 'setup_failed', message },
        }));
        if (failed) await jobs.emit(r.id, { type: 'final', record: failed });
      }
    } catch (e) {
      if (isRedisFull(e)) {
        // Nobody was told these ids (the submission fails): remove the records rather than leave them `queued`.
        const discarded = await jobs.discard(records.map((r) => r.id)).then(
          () => true,
          () => false,
        );
        if (discarded) return;
      }
      logger?.error({ err: e, tenant: this.tenant }, 'could not mark unqueued jobs as failed');
    }
  }
}
