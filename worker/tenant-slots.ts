// At most N of a tenant's jobs run at once across all workers. A slot is a member of the sorted set
// keys.tenantRunning(tenant) scored by its expiry; holders refresh it while the job runs, so the slots of a worker that
// died free themselves after LEASE_MS instead of being lost for good. Taking a slot is one Lua script: atomic
// across workers.
import type { Redis } from 'ioredis';
import { keys } from '../common/keys.js';
import { readTenantRecord, TENANT_DEFAULTS } from '../common/tenant-record.js';

export const LEASE_MS = 15_000;

const TAKE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0`;

export class TenantSlots {
  constructor(private readonly redis: Redis) {}

  /**
   * The tenant's concurrency from its record, or a new tenant's default when it has none (a queue-driven producer
   * may name a tenant that was never created).
   */
  async concurrency(tenant: string): Promise<number> {
    return (await readTenantRecord(this.redis, tenant))?.concurrency ?? TENANT_DEFAULTS.concurrency;
  }

  async take(tenant: string, jobId: string): Promise<boolean> {
    const now = Date.now();
    const limit = await this.concurrency(tenant);
    return (await this.redis.eval(TAKE, 1, keys.tenantRunning(tenant), now, now + LEASE_MS, limit, jobId)) === 1;
  }

  async refresh(tenant: string, jobId: string): Promise<void> {
    await this.redis.zadd(keys.tenantRunning(tenant), 'XX', Date.now() + LEASE_MS, jobId);
  }

  async release(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(keys.tenantRunning(tenant), jobId);
  }
}
