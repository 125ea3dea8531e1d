// Callbacks: when a job that named a callbackUrl ends, its final record is POSTed there, signed, and retried with
// exponential backoff until the receiver answers 2xx (or the attempts run out). Deliveries are BullMQ jobs on their
// own queue (QUEUES.callbacks), so a worker that dies mid-retry leaves them to another worker instead of losing them.
//
// Signature (header Lid-Signature): t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">, keyed by the tenant's
// callback signing secret (the hex string `lid tenants create` and `lid tenants rotate-signing-secret` print), which
// derives from a server key outside Redis (common/callback-secret.ts): reading Redis does not let anyone forge a
// signature. The timestamp lets the receiver refuse replays.
//
// The URL is the tenant's: the request goes through the operator's egress policy (no loopback, private or
// metadata address unless allowed; common/policed-fetch.ts), follows no redirect, and its answer is never read --
// only the status counts, so a receiver cannot make Lid hold or relay what it sends. A refused address is final:
// retrying would only ask again.
import crypto from 'node:crypto';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { currentCallbackSecret } from '../common/callback-secret.js';
import { isLidError } from '../common/errors.js';
import type { JobRecord } from '../common/job.js';
import { type EgressOptions, PolicedFetch } from '../common/policed-fetch.js';
import { QUEUES } from '../common/keys.js';

const ATTEMPTS = 8;
const FIRST_RETRY_MS = 500;
const TIMEOUT_MS = 10_000;

export function signBody(key: string, body: string, timestamp: number): string {
  const mac = crypto.createHmac('sha256', key).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** What is delivered: a job's final record, or a batch's summary once its last job has ended. */
interface Delivery {
  url: string;
  tenant: string;
  /** job or batch id, also the delivery's identity (one delivery per job or batch) */
  id: string;
  body: unknown;
}

export class Callbacks {
  private readonly queue: Queue;
  private readonly worker: Worker;
  private readonly http: PolicedFetch;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly redis: Redis,
    queueConnection: Redis,
    private readonly log: Logger,
    egress: EgressOptions,
    /** The server key tenants' signing secrets derive from. */
    private readonly signingKey: Buffer,
  ) {
    this.http = new PolicedFetch({ ...egress, maxRedirects: 0 });
    this.queue = new Queue(QUEUES.callbacks, { connection: redis, prefix: QUEUES.prefix });
    this.worker = new Worker(QUEUES.callbacks, (job) => this.deliver(job.data as Delivery, job.attemptsMade + 1), {
      connection: queueConnection,
      prefix: QUEUES.prefix,
      concurrency: 16,
    });
    this.worker.on('failed', (job, err) => {
      if (job && (job.attemptsMade >= ATTEMPTS || err.name === 'UnrecoverableError'))
        this.log.warn({ id: (job.data as Delivery).id, err: err.message }, 'callback given up');
    });
  }

  async send(url: string, record: JobRecord): Promise<void> {
    await this.enqueue({ url, tenant: record.tenant, id: record.id, body: record });
  }

  async sendBatch(url: string, tenant: string, summary: { id: string } & Record<string, unknown>): Promise<void> {
    await this.enqueue({ url, tenant, id: summary.id, body: summary });
  }

  private async enqueue(delivery: Delivery): Promise<void> {
    await this.queue.add('callback', delivery, {
      jobId: `callback-${delivery.id}`, // one delivery per job or batch, even if an end is recorded twice
      attempts: ATTEMPTS,
      backoff: { type: 'exponential', delay: FIRST_RETRY_MS },
      removeOnComplete: 1000,
      removeOnFail: 1000,
    });
  }

  private async deliver({ url, tenant, id, body: payload }: Delivery, attempt: number): Promise<void> {
    const key = await currentCallbackSecret(this.redis, this.signingKey, tenant);
    if (!key) throw new Error(`tenant ${tenant} does not exist: no secret to sign callbacks with`);
    const body = JSON.stringify(payload);
    const res = await this.post(url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'lid-signature': signBody(key, body, Math.floor(Date.now() / 1000)),
        'lid-delivery-id': id,
        'lid-delivery-attempt': String(attempt),
      },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (res.status < 200 || res.status > 299) throw new Error(`callback to ${url} answered ${res.status}`);
  }

  /** fetch under the policy; an address the policy refuses ends the delivery for good. */
  private async post(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.http.fetch(url, init);
    } catch (e) {
      if (isLidError(e) && e.details?.refused) throw new UnrecoverableError(`callback to ${url} refused: ${e.message}`);
      throw e;
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const steps: [string, () => Promise<void>][] = [
        ['the delivery worker', () => this.worker.close()],
        ['the queue', () => this.queue.close()],
        ['the connections', () => this.http.close()],
      ];
      for (const [what, step] of steps) {
        try {
          await step();
        } catch (err) {
          this.log.warn({ err }, `closing callbacks: ${what} failed`);
        }
      }
    })();
    return this.closing;
  }
}
