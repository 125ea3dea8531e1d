// The typed client for queue-driven use: another service puts jobs straight onto Lid's BullMQ queue and collects
// the results without HTTP. It submits through the gateway's own core (common/job-submitter.ts), so its jobs have
// ids, records, a `queued` event, BullMQ options and a fair-share priority exactly as the gateway's do, and waits on
// the job's event stream for the final record.
//
//   const lid = new LidQueueClient(redisUrl);
//   const { id } = await lid.submit('tenant-a', { image: 'python', command: ['python3', '-c', 'print(42)'] });
//   const record = await lid.wait(id, 30_000);   // record.result.stdout === '42\n'
//
// What it checks before queueing, each refusal a LidError:
//   - the request against the job schema (invalid_spec naming each field, as the gateway's 400 does);
//   - the tenant's name (lowercase letters, digits, "-": it is part of Redis keys);
//   - the tenant's max queued (queue_full), its six limit ceilings (invalid_spec naming the limit) and its network
//     ceiling (invalid_spec naming `network`), read from its record; a tenant without a record gets a new tenant's defaults (TENANT_DEFAULTS), as the workers give it for
//     its concurrency. One read of the record per submit.
// What it leaves to the operator, who runs the producer and holds the Redis password (and so could write anything):
//   - the server caps (LID_CAP_*): not known here; every worker holds each job to its own caps and ends a job above
//     them `error` invalid_spec before it runs;
//   - the rate quota (ratePerSec guards the gateway's HTTP front), a revoked tenant (revoking takes a tenant's API
//     key, not the operator's Redis), Idempotency-Keys;
//   - whether the image is one the workers offer (a worker ends the job `error` not_found) and whether a callback's
//     host is one the egress policy allows (the worker refuses the delivery).
import { context } from '@opentelemetry/api';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { LidError } from './errors.js';
import { FINAL_STATES, type JobRecord, type JobRequestInput, JobRequestSchema } from './job.js';
import { JobStore } from './job-store.js';
import { JobSubmitter } from './job-submitter.js';
import { QUEUES } from './keys.js';
import { holdUnder, tenantCeilings } from './limits.js';
import { networkCeilingProblem } from './network-policy.js';
import { connectRedis } from './redis.js';
import { contextFromTraceparent } from './telemetry.js';
import { ceilingsOfTenant, readTenantRecord, TENANT_DEFAULTS, TENANT_NAME } from './tenant-record.js';
import { invalidInput, parseOrThrow } from './validation.js';

export class LidQueueClient {
  private readonly redis: Redis;
  private readonly queue: Queue;
  private readonly jobs: JobStore;
  private readonly submitter: JobSubmitter;
  private closing: Promise<void> | null = null;

  constructor(
    redisUrl: string,
    private readonly resultTtlSeconds = 86_400,
  ) {
    this.redis = connectRedis(redisUrl, 'queue-client');
    this.queue = new Queue(QUEUES.jobs, { connection: this.redis, prefix: QUEUES.prefix });
    this.jobs = new JobStore(this.redis, resultTtlSeconds);
    this.submitter = new JobSubmitter({ redis: this.redis, queue: this.queue, jobs: this.jobs });
  }

  async submit(tenant: string, input: JobRequestInput, opts: { traceparent?: string } = {}): Promise<JobRecord> {
    const parsed = parseOrThrow(JobRequestSchema, input, 'job');
    if (!TENANT_NAME.test(tenant)) {
      throw new LidError('invalid_spec', `tenant name "${tenant}" must be 1 to 63 lowercase letters, digits or "-"`);
    }
    const settings = (await readTenantRecord(this.redis, tenant)) ?? TENANT_DEFAULTS;
    const network = networkCeilingProblem(parsed.network, settings.network);
    if (network) throw invalidInput([network], 'job');
    const request = holdUnder(parsed, tenantCeilings(ceilingsOfTenant(settings)));
    const reservation = await this.submitter.reserve({ name: tenant, maxQueued: settings.maxQueued }, [request]);
    // The caller's trace is the parent of the enqueue span (when a tracing SDK runs in this process).
    const [record] = await context.with(contextFromTraceparent(opts.traceparent), () =>
      reservation.commit({ traceparent: opts.traceparent }),
    );
    return record!;
  }

  async get(id: string): Promise<JobRecord | null> {
    return this.jobs.get(id);
  }

  /** Waits for the job's final record (or returns the current one at the deadline). */
  async wait(id: string, timeoutMs: number): Promise<JobRecord> {
    const reader = this.redis.duplicate();
    const events = new JobStore(reader, this.resultTtlSeconds);
    const deadline = Date.now() + timeoutMs;
    try {
      let from = '0';
      while (Date.now() < deadline) {
        for (const { id: entryId, event } of await events.readEvents(id, from, Math.max(1, deadline - Date.now()))) {
          from = entryId;
          if (event.type === 'final') return event.record;
        }
        const record = await this.jobs.get(id);
        if (record && FINAL_STATES.includes(record.state)) return record;
      }
      const record = await this.jobs.get(id);
      if (!record) throw new LidError('not_found', `no job ${id}`);
      return record;
    } finally {
      reader.disconnect();
    }
  }

  async cancel(id: string): Promise<void> {
    await this.jobs.requestCancel(id);
  }

  /** Closes the queue, then the connection it uses; each step runs even if the one before failed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const step of [() => this.queue.close(), () => this.redis.quit()]) await step().catch(() => {});
    })();
    return this.closing;
  }
}
