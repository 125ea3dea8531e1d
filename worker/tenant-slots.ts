// At most N of a tenant's jobs run at once across all workers. A slot is a member of the sorted set
// keys.tenantRunning(tenant) scored by its expiry; holders refresh it while the job runs, so the slots of a worker that
// died free themselves after LEASE_MS instead of being lost for good. A slot is taken by the job's claim
// (worker/claim.ts), atomically with the rest of it, under the tenant's concurrency (its record's, or a new tenant's
// default when it has none: a queue-driven producer may name a tenant that was never created).
import type { Redis } from 'ioredis';
import { keys } from '../common/keys.js';

/** How long a slot stays taken without a refresh. */
export const LEASE_MS = 15_000;

export class TenantSlots {
  constructor(private readonly redis: Redis) {}

  /** Keeps the job's slot taken for another LEASE_MS (only if it still holds one: XX). */
  async refresh(tenant: string, jobId: string): Promise<void> {
    await this.redis.zadd(keys.tenantRunning(tenant), 'XX', Date.now() + LEASE_MS, jobId);
  }

  async release(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(keys.tenantRunning(tenant), jobId);
  }
}
