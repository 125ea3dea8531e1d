// The gateway's submissions: common/job-submitter.ts puts the jobs on the queue (ids, records before the queue add,
// the queued event, BullMQ options and the fair-share priority, failing records when the add fails, batch tagging);
// around it the gateway adds what only it has. Before a Submission: the rate quota (middleware/rate-limit.ts), the
// image check and the tenant's ceilings under the server caps (job-checks.ts). Here: the tenant's max queued as a
// 429 with Retry-After, and the submitted-jobs metric. Between reserve and commit the route claims its
// Idempotency-Key, so that a job refused for its quota leaves the key free for the retry.
import { isLidError } from '../common/errors.js';
import type { JobRecord, JobRequest } from '../common/job.js';
import { JobSubmitter, type Reservation } from '../common/job-submitter.js';
import { ApiError } from './api-error.js';
import type { Services } from './deps.js';
import type { Tenant } from './tenants.js';

export class Submission {
  private constructor(
    private readonly s: Services,
    private readonly tenant: Tenant,
    private readonly reservation: Reservation,
    private readonly traceparent: string | undefined,
  ) {}

  get ids(): string[] {
    return this.reservation.ids;
  }

  /** Counts the jobs against the tenant's max queued (429 when they do not fit) and gives them ids. */
  static async reserve(s: Services, tenant: Tenant, requests: JobRequest[], traceparent?: string): Promise<Submission> {
    try {
      const reservation = await new JobSubmitter(s).reserve(tenant, requests);
      return new Submission(s, tenant, reservation, traceparent);
    } catch (e) {
      if (isLidError(e) && e.code === 'queue_full')
        throw new ApiError('queue_full', e.message, e.details, { 'Retry-After': '1' });
      throw e;
    }
  }

  /** Gives the reservation back without queueing anything. */
  abandon(): Promise<void> {
    return this.reservation.abandon();
  }

  /** Writes the records, then queues the jobs (tagged with their batch, when they are one). */
  async commit(batchId?: string): Promise<JobRecord[]> {
    const records = await this.reservation.commit({ traceparent: this.traceparent, batchId });
    this.s.metrics.jobsSubmitted.inc({ tenant: this.s.metrics.tenantLabel.value(this.tenant.name) }, records.length);
    return records;
  }
}
