// At most N of a tenant's jobs run at once across all workers. A slot is a member of the sorted set
// lid:tenant:<t>:running scored by its expiry; holders refresh it while the job runs, so the slots of a worker that
// died free themselves after LEASE_MS instead of being lost for good. Taking a slot is one Lua script: atomic
// across workers.
import type { Redis } from 'ioredis';

export const LEASE_MS = 15_000;
const DEFAULT_CONCURRENCY = 4;

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

const key = (tenant: string) => `lid:tenant:${tenant}:running`;

export class TenantSlots {
  constructor(private readonly redis: Redis) {}

  /** The tenant's concurrency from its record (gateway/tenants.ts writes it), or the default. */
  async concurrency(tenant: string): Promise<number> {
    const text = await this.redis.get(`lid:tenant:${tenant}`);
    const n = text ? (JSON.parse(text) as { concurrency?: number }).concurrency : undefined;
    return typeof n === 'number' && n > 0 ? n : DEFAULT_CONCURRENCY;
  }

  async take(tenant: string, jobId: string): Promise<boolean> {
    const now = Date.now();
    const limit = await this.concurrency(tenant);
    return (await this.redis.eval(TAKE, 1, key(tenant), now, now + LEASE_MS, limit, jobId)) === 1;
  }

  async refresh(tenant: string, jobId: string): Promise<void> {
    await this.redis.zadd(key(tenant), 'XX', Date.now() + LEASE_MS, jobId);
  }

  async release(tenant: string, jobId: string): Promise<void> {
    await this.redis.zrem(key(tenant), jobId);
  }
}
