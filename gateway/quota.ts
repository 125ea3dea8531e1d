// A tenant's quotas, checked by the gateway (keys in common/keys.ts):
//   rate       a token bucket per tenant (keys.tenantRate), refilled at ratePerSec and holding one second's
//              worth; one Lua script reads, refills and takes, so gateways sharing the Redis share the bucket
//   max queued the counter keys.tenantQueued of the tenant's jobs waiting in the queue: counted in at submit by
//              common/job-submitter.ts (which refuses jobs over it; gateway/submission.ts makes that a 429); a
//              worker counts a job out when its claim first takes it off the queue (worker/claim.ts), guarded by
//              keys.jobDequeued (SET NX) so a job is never counted out twice; the gateway uses the same guard
//              when it cancels one (leftQueue)
//   ceilings   limits a job may ask for: each of the six under min(the tenant's ceiling, the server's cap), a 400
//              naming the field and the ceiling (common/limits.ts holds the rule the workers apply too)
import type { Redis } from 'ioredis';
import type { JobRequest } from '../common/job.js';
import { keys } from '../common/keys.js';
import { capCeilings, holdUnder, type LimitValues, lowerOf, tenantCeilings } from '../common/limits.js';
import { ceilingsOfTenant } from '../common/tenant-record.js';
import { ApiError } from './api-error.js';
import type { Tenant } from './tenants.js';

// KEYS[1] the bucket; ARGV: tokens per second, capacity, cost. Returns {1, 0} when taken, else {0, ms to wait}.
// Time comes from the Redis server, not from each gateway, so gateways with skewed clocks agree.
const TAKE_TOKENS = `
local now_s, now_us = unpack(redis.call('TIME'))
local now = now_s * 1000 + math.floor(now_us / 1000)
local rate, capacity, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
if wait > 0 then return {0, wait} end
return {1, 0}`;

export class Quota {
  constructor(
    private readonly redis: Redis,
    private readonly resultTtlSeconds: number,
  ) {}

  /** Takes one request's token from the tenant's bucket, or throws 429 with Retry-After (whole seconds, >= 1). */
  async takeToken(tenant: Tenant): Promise<void> {
    const capacity = Math.max(1, tenant.ratePerSec);
    const [taken, waitMs] = (await this.redis.eval(
      TAKE_TOKENS,
      1,
      keys.tenantRate(tenant.name),
      tenant.ratePerSec,
      capacity,
      1,
    )) as [number, number];
    if (taken === 1) return;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    throw new ApiError(
      'rate_limited',
      `tenant ${tenant.name} may make ${tenant.ratePerSec} requests per second: retry in ${retryAfter} s`,
      { retryAfterSeconds: retryAfter, ratePerSec: tenant.ratePerSec },
      { 'Retry-After': String(retryAfter) },
    );
  }

  /**
   * Counts a job out of the queue when the gateway itself removed it (cancelled while queued). The same guard the
   * workers use makes this a no-op when a worker already counted it out.
   */
  async leftQueue(tenantName: string, jobId: string): Promise<void> {
    if (await this.redis.set(keys.jobDequeued(jobId), '1', 'EX', this.resultTtlSeconds, 'NX')) {
      await this.redis.decr(keys.tenantQueued(tenantName));
    }
  }
}

/**
 * Holds a job to min(tenant's ceiling, server's cap) for each limit. A limit the job asks for above it is a 400
 * naming the field and the ceiling; a limit it leaves out whose default is above it is set to it, so that a job that
 * asks for nothing still runs within what its tenant may use. `prefix` names the job inside a batch ("jobs.3.").
 */
export function applyCeilings(request: JobRequest, tenant: Tenant, caps: LimitValues, prefix = ''): JobRequest {
  return holdUnder(request, lowerOf(tenantCeilings(ceilingsOfTenant(tenant)), capCeilings(caps, 'server')), prefix);
}
