// Putting validated jobs on the queue, one or a batch, in two steps so that the route can decide in between
// (Idempotency-Key): `reserve` counts the jobs against the tenant's max queued and names them; `commit` writes their
// records (state queued) and only then adds them to BullMQ, so a worker never takes a job that has no record; if the
// add fails the records are marked `error` and the reservation is given back. `abandon` gives it back unused.
//
// When Redis is full (maxmemory, noeviction) the writes that would undo a half-done submission are refused too:
// the records are then deleted (DEL is allowed on a full Redis) and the reservation is given back in the background
// once memory frees, so that the tenant's queued count does not keep a job that never was. The Redis error itself
// goes up unchanged, for the error handler to answer 503 "Redis is full".
import type { Attributes, Span } from '@opentelemetry/api';
import type { JobsOptions } from 'bullmq';
import { LidError } from '../common/errors.js';
import type { JobRecord, JobRequest, QueuedJob } from '../common/job.js';
import { fairPriority, newJobId } from '../common/queue-client.js';
import { isRedisFull } from '../common/redis.js';
import { ATTR, inSpan, limitAttributes, spanTraceId, traceparentOf } from '../common/telemetry.js';
import type { Services } from './deps.js';
import type { Tenant } from './tenants.js';

const JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: 1000,
  removeOnFail: 1000,
} as const satisfies JobsOptions;

/** How long a reservation refused by a full Redis is retried in the background. */
const RELEASE_RETRY_MS = 15 * 60_000;

export class Submission {
  private settled = false;

  private constructor(
    private readonly s: Services,
    private readonly tenant: Tenant,
    private readonly requests: JobRequest[],
    readonly ids: string[],
    /** The tenant's queue count including these jobs: they hold positions last - n + 1 .. last. */
    private readonly last: number,
    private traceparent: string | undefined,
  ) {}

  private traceId: string | null = null;

  /** Counts the jobs against the tenant's max queued (429 when they do not fit) and gives them ids. */
  static async reserve(s: Services, tenant: Tenant, requests: JobRequest[], traceparent?: string): Promise<Submission> {
    const last = await s.quota.reserveQueued(tenant, requests.length);
    return new Submission(
      s,
      tenant,
      requests,
      requests.map(() => newJobId()),
      last,
      traceparent,
    );
  }

  /** Gives the reservation back without queueing anything. */
  async abandon(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await this.release();
  }

  /** Gives the reservation back; on a full Redis, keeps trying in the background (for up to RELEASE_RETRY_MS). */
  private async release(): Promise<void> {
    const { s, tenant } = this;
    const n = this.requests.length;
    try {
      await s.quota.releaseQueued(tenant.name, n);
    } catch (e) {
      if (!isRedisFull(e)) throw e;
      const deadline = Date.now() + RELEASE_RETRY_MS;
      const retry = (delay: number) =>
        setTimeout(() => {
          s.quota.releaseQueued(tenant.name, n).catch((err: unknown) => {
            if (isRedisFull(err) && Date.now() < deadline) retry(Math.min(delay * 2, 10_000));
            else s.logger.error({ err, tenant: tenant.name, n }, 'could not give back a queued-jobs reservation');
          });
        }, delay).unref();
      retry(500);
    }
  }

  /** Writes the records, then queues the jobs (tagged with their batch, when they are one). */
  async commit(batchId?: string): Promise<JobRecord[]> {
    return inSpan('enqueue', this.spanAttributes(), (span) => this.commitIn(span, batchId));
  }

  /** One job's enqueue span carries its id (so it is part of the job's timeline); a batch's counts its jobs. */
  private spanAttributes(): Attributes {
    const [only] = this.requests;
    if (this.requests.length !== 1 || !only)
      return { [ATTR.tenant]: this.tenant.name, [ATTR.batchSize]: this.requests.length };
    return {
      [ATTR.jobId]: this.ids[0]!,
      [ATTR.tenant]: this.tenant.name,
      [ATTR.image]: only.image,
      ...limitAttributes(only.limits),
    };
  }

  /**
   * The records name the trace, and the queued jobs carry a traceparent naming the enqueue span, so the worker's
   * spans continue this trace (the client's, when it sent a traceparent). Without a tracing SDK the span is a no-op
   * and the client's traceparent, if any, is passed on as it came.
   */
  private async commitIn(span: Span, batchId?: string): Promise<JobRecord[]> {
    this.settled = true;
    this.traceId = spanTraceId(span);
    this.traceparent = traceparentOf(span) ?? this.traceparent;
    const createdAt = new Date().toISOString();
    const records = this.requests.map((request, i) => this.record(this.ids[i]!, request, createdAt));
    const entries = this.requests.map((request, i) => ({
      name: 'job',
      data: this.queued(this.ids[i]!, request, createdAt, batchId),
      opts: { ...JOB_OPTIONS, jobId: this.ids[i]!, priority: this.priority(i, request) },
    }));
    try {
      await Promise.all(records.map((r) => this.create(r)));
      if (entries.length === 1) await this.s.queue.add(entries[0]!.name, entries[0]!.data, entries[0]!.opts);
      else await this.s.queue.addBulk(entries);
    } catch (e) {
      await this.failAll(records, `could not queue the job: ${(e as Error).message}`);
      if (isRedisFull(e)) throw e;
      throw new LidError('setup_failed', 'could not queue the job: Redis is unavailable, retry shortly', {
        cause: (e as Error).message,
      });
    }
    this.s.metrics.jobsSubmitted.inc({ tenant: this.s.metrics.tenantLabel.value(this.tenant.name) }, records.length);
    return records;
  }

  /**
   * Fair share across tenants. BullMQ serves the lowest priority number first (FIFO among equals), and a job's
   * number grows with its position in its own tenant's queue: the k-th waiting job of every tenant gets about
   * 10 * k. So the queue interleaves tenants, serving everyone's 1st job, then everyone's 2nd, and so on: a tenant
   * with 10,000 jobs waiting does not delay another tenant's first job by more than one job per busy tenant. The
   * request's own priority (1..10, 10 most urgent) only reorders a tenant's neighbouring positions (it adds 0..9),
   * never lets it jump ahead of other tenants' earlier positions. Positions are taken at submit and not renumbered
   * as jobs start, so the share is approximate (a tenant's new job may overtake its own older ones), which does not
   * matter for fairness between tenants. The formula lives in common/queue-client.ts so
   * every producer (this gateway, queue-driven clients) numbers jobs alike.
   */
  private priority(i: number, request: JobRequest): number {
    return fairPriority(this.last - this.requests.length + 1 + i, request.priority);
  }

  private async create(record: JobRecord): Promise<void> {
    await this.s.jobs.create(record);
    await this.s.jobs.emit(record.id, { type: 'state', state: 'queued', at: record.createdAt });
  }

  private record(id: string, request: JobRequest, createdAt: string): JobRecord {
    return {
      id,
      tenant: this.tenant.name,
      image: request.image,
      state: 'queued',
      createdAt,
      startedAt: null,
      finishedAt: null,
      queueMs: null,
      attempts: 0,
      traceId: this.traceId,
      ...(request.metadata ? { metadata: request.metadata } : {}),
    };
  }

  private queued(id: string, request: JobRequest, createdAt: string, batchId?: string): QueuedJob {
    return {
      id,
      tenant: this.tenant.name,
      request,
      createdAt,
      ...(this.traceparent ? { traceparent: this.traceparent } : {}),
      ...(batchId ? { batchId } : {}),
    };
  }

  private async failAll(records: JobRecord[], message: string): Promise<void> {
    const finishedAt = new Date().toISOString();
    await this.release().catch(() => {});
    try {
      for (const r of records) {
        const failed = await this.s.jobs.update(r.id, (current) => ({
          ...current,
          state: 'error',
          finishedAt,
          error: { code: 'setup_failed', message },
        }));
        if (failed) await this.s.jobs.emit(r.id, { type: 'final', record: failed });
      }
    } catch (e) {
      if (isRedisFull(e)) {
        // Nobody was told these ids (the request fails): remove the records rather than leave them `queued`.
        const discarded = await this.s.jobs.discard(records.map((r) => r.id)).then(
          () => true,
          () => false,
        );
        if (discarded) return;
      }
      this.s.logger.error({ err: e, tenant: this.tenant.name }, 'could not mark unqueued jobs as failed');
    }
  }
}
