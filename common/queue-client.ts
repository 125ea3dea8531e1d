// The typed client for queue-driven use: another service puts jobs straight onto Lid's BullMQ queue and collects
// the results without HTTP. It does what the gateway does on submit (validate against the job schema, create the
// record, count the job against its tenant, queue it with a fair-share priority) and waits on the job's event
// stream for the final record.
//
//   const lid = new LidQueueClient(redisUrl);
//   const { id } = await lid.submit('tenant-a', { image: 'python', command: ['python3', '-c', 'print(42)'] });
//   const record = await lid.wait(id, 30_000);   // record.result.stdout === '42\n'
import crypto from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { LidError } from './errors.js';
import { FINAL_STATES, type JobRecord, type JobRequestInput, JobRequestSchema, type QueuedJob } from './job.js';
import { JobStore } from './job-store.js';
import { keys, QUEUES } from './keys.js';
import { connectRedis } from './redis.js';
import { parseOrThrow } from './validation.js';

const MAX_PRIORITY = 2_097_151; // BullMQ's largest priority (lowest urgency): 2^21 - 1

/**
 * The queue priority that makes service fair across tenants: the k-th waiting job of every tenant gets about the
 * same number, so a tenant with 10,000 queued jobs does not starve one with a single job (served round-robin by
 * position), and within a tenant the request's own priority (1..10, 10 most urgent) breaks ties.
 */
export function fairPriority(positionInTenantQueue: number, requested = 5): number {
  return Math.min(MAX_PRIORITY, Math.max(1, positionInTenantQueue * 10 + (10 - requested)));
}

export function newJobId(): string {
  return `job_${crypto.randomBytes(15).toString('base64url')}`;
}

export class LidQueueClient {
  private readonly redis: Redis;
  private readonly queue: Queue;
  private readonly jobs: JobStore;

  constructor(
    redisUrl: string,
    private readonly resultTtlSeconds = 86_400,
  ) {
    this.redis = connectRedis(redisUrl, 'queue-client');
    this.queue = new Queue(QUEUES.jobs, { connection: this.redis, prefix: QUEUES.prefix });
    this.jobs = new JobStore(this.redis, resultTtlSeconds);
  }

  async submit(tenant: string, input: JobRequestInput, opts: { traceparent?: string } = {}): Promise<JobRecord> {
    const request = parseOrThrow(JobRequestSchema, input, 'job');
    const record: JobRecord = {
      id: newJobId(),
      tenant,
      image: request.image,
      state: 'queued',
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
      queueMs: null,
      attempts: 0,
      traceId: null,
      ...(request.metadata ? { metadata: request.metadata } : {}),
    };
    await this.jobs.create(record);
    const position = await this.redis.incr(keys.tenantQueued(tenant));
    const queued: QueuedJob = { id: record.id, tenant, request, createdAt: record.createdAt, ...opts };
    await this.queue.add('job', queued, {
      jobId: record.id,
      priority: fairPriority(position, request.priority),
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: 1000,
      removeOnFail: 1000,
    });
    return record;
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

  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit();
  }
}
