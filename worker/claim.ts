// Claiming a job: everything between BullMQ handing this worker a queue entry and the job's sandbox starting, as one
// Lua script, so that it is atomic across workers and costs one Redis round trip. Measured with MONITOR around one
// job on a real worker (worker/worker.test.ts counts it): 10 round trips before this script (the tenant record, the
// slot script, the dequeued guard, its DECR, the running set, the record, the cancel flag, the record again, the
// compare-and-set, the `running` event), 1 now (EVALSHA; the first claim after Redis lost its script cache sends the
// script too).
//
// In order, the script:
//   1. checks that this worker still holds BullMQ's lock on the entry: of two workers that both believe they hold
//      the job (one stalled past its lock, the other given the job since), only the lock holder claims it -> `lost`
//   2. reads the record: gone or already final (a redelivery after the result was stored) -> `skip`
//   3. the cancel flag set -> the record `cancelled` -> `cancelled`
//   4. the job above this worker's caps (the caller says so) -> the record `error` invalid_spec -> `refused`
//   5. a slot under the tenant's concurrency (its record's, or a new tenant's default): none free -> `over_limit`,
//      nothing written (the caller puts the job back in the delayed set, keeping its place)
//   6. takes the slot, adds the job to the running set, sets the record running (startedAt, queueMs, attempts + 1)
//      and appends its `running` event -> `claimed` with the record
// Every outcome but `lost`, `over_limit` and the bad-record case counts the job out of its tenant's queued counter the
// first time it leaves the queue (keys.jobDequeued, SET NX: never twice).
//
// Cancelled and refused jobs are finished here, record and final event, rather than handed back for the runner to
// finish: the job then goes from queued to final in the same atomic step that saw the flag (or the caller's caps
// check), never shows as running, and a redelivery racing it can only see it final. The cost is that this script
// writes a final event as JobStore.emit does (its mark and channels are passed in, spelled once in job-store.ts).
//
// On a full Redis (maxmemory, noeviction) Redis refuses a script's first write that may grow memory and lets the
// rest through once one has run. Every path that writes starts with the dequeued guard's SET, so the claim either
// fails with OOM having written nothing, or completes. The caller waits and claims again (retryWhileRedisFull): an
// accepted job waits for memory, as its result does, and is neither failed nor half-claimed.
//
// The record is JSON that the script edits with cjson and writes back with its fields in the order JavaScript
// writes them (cjson's own order is its hash table's). JobRecord holds no arrays (cjson cannot tell [] from {}).
import type { Redis } from 'ioredis';
import { LidError } from '../common/errors.js';
import { FINAL_STATES, type JobRecord, type QueuedJob } from '../common/job.js';
import { FINAL_EVENT_MARK, type JobEvent, STREAM_MAXLEN } from '../common/job-store.js';
import { CHANNELS, keys, QUEUES, queueKeys } from '../common/keys.js';
import { parseTenantRecord, TENANT_DEFAULTS, TENANT_NAME } from '../common/tenant-record.js';
import { LEASE_MS } from './tenant-slots.js';

const FINAL = FINAL_STATES.map((s) => `["${s}"] = true`).join(', ');

const CLAIM = `
local job_key, cancel_key, dequeued_key, queued_key, slots_key, tenant_key, running_key, events_key, lock_key =
  unpack(KEYS)
local token, job_id, now_ms, now_iso, lease_until, default_limit, read_tenant, ttl, maxlen, refusal, running_event,
  final_mark, events_channel, final_channel = unpack(ARGV)
now_ms = tonumber(now_ms)
local FINAL = { ${FINAL} }
local ORDER = { 'id', 'tenant', 'image', 'state', 'createdAt', 'startedAt', 'finishedAt', 'queueMs', 'attempts',
  'traceId', 'metadata' }

-- The record as JavaScript would write it: the fields of ORDER first, any others after (sorted), then the error.
local function encode(record, error_json)
  local parts, done = {}, { error = error_json ~= nil }
  local function put(k, json)
    parts[#parts + 1] = cjson.encode(k) .. ':' .. json
    done[k] = true
  end
  for _, k in ipairs(ORDER) do
    if record[k] ~= nil then put(k, cjson.encode(record[k])) end
  end
  local rest = {}
  for k in pairs(record) do
    if not done[k] then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do put(k, cjson.encode(record[k])) end
  if error_json then put('error', error_json) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Milliseconds since the epoch of a time as toISOString writes it (2026-11-28T12:00:00.000Z), or nil. Days from the
-- civil date by H. Hinnant's algorithm (chrono-Compatible Low-Level Date Algorithms), on a March-based year.
local function epoch_ms(iso)
  local y, m, d, hh, mm, ss, frac = string.match(iso, '^(%d+)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.?(%d*)Z$')
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local ms = tonumber(string.sub(frac .. '000', 1, 3))
  return ((days * 24 + tonumber(hh)) * 60 + tonumber(mm)) * 60000 + tonumber(ss) * 1000 + ms
end

local record

-- The first write of every path that writes (see the file's header on a full Redis).
local function dequeue()
  if redis.call('SET', dequeued_key, '1', 'EX', ttl, 'NX') then redis.call('DECR', queued_key) end
end

local function finish(state, error_json)
  dequeue()
  record.state = state
  record.finishedAt = now_iso
  local stored = encode(record, error_json)
  redis.call('SET', job_key, stored, 'EX', ttl)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'event', final_mark)
  redis.call('PUBLISH', events_channel, job_id)
  redis.call('EXPIRE', events_key, ttl)
  redis.call('PUBLISH', final_channel, job_id)
  return { state, stored }
end

if redis.call('GET', lock_key) ~= token then return { 'lost' } end

local text = redis.call('GET', job_key)
if not text then
  dequeue()
  return { 'skip' }
end
record = cjson.decode(text)
if FINAL[record.state] then
  dequeue()
  return { 'skip' }
end
if redis.call('EXISTS', cancel_key) == 1 then return finish('cancelled') end
if refusal ~= '' then return finish('error', refusal) end

local limit = tonumber(default_limit)
if read_tenant == '1' then
  local tenant_text = redis.call('GET', tenant_key)
  if tenant_text then
    local ok, tenant = pcall(cjson.decode, tenant_text)
    if not ok or type(tenant) ~= 'table' then return { 'bad_tenant_record' } end
    local c = tenant.concurrency
    if c ~= nil then
      if type(c) ~= 'number' or c < 1 or c % 1 ~= 0 then return { 'bad_tenant_record' } end
      limit = c
    end
  end
end
local mine = tonumber(redis.call('ZSCORE', slots_key, job_id))
local live = redis.call('ZCOUNT', slots_key, '(' .. now_ms, '+inf')
if not (mine and mine > now_ms) and live >= limit then return { 'over_limit' } end

dequeue()
redis.call('ZADD', slots_key, lease_until, job_id)
redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now_ms)
redis.call('SADD', running_key, job_id)
record.state = 'running'
record.startedAt = now_iso
local created = type(record.createdAt) == 'string' and epoch_ms(record.createdAt)
record.queueMs = created and (now_ms - created) or cjson.null
record.attempts = (tonumber(record.attempts) or 0) + 1
local stored = encode(record)
redis.call('SET', job_key, stored)
redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'event', running_event)
redis.call('PUBLISH', events_channel, job_id)
return { 'claimed', stored }
`;

/** What a claim found; the record is the one now stored (running, or final for cancelled and refused). */
export type Claim =
  | { outcome: 'claimed'; record: JobRecord }
  | { outcome: 'cancelled' | 'refused'; record: JobRecord }
  | { outcome: 'skip' | 'over_limit' | 'lost' };

/** BullMQ's entry for the job as this worker holds it: its id (usually the job's) and this worker's lock token. */
export interface HeldEntry {
  id: string;
  token: string;
}

/** Why the worker refuses to run the job (it asks for more than this worker's caps allow). */
export interface Refusal {
  code: string;
  message: string;
}

type ClaimCommand = (...keysAndArgs: (string | number)[]) => Promise<[string, string?]>;

export class JobClaims {
  private readonly command: ClaimCommand;

  constructor(
    private readonly redis: Redis,
    private readonly resultTtlSeconds: number,
  ) {
    // EVALSHA through ioredis, which sends the script itself only when Redis does not have it yet.
    redis.defineCommand('lidClaimJob', { numberOfKeys: 9, lua: CLAIM });
    const defined = (redis as unknown as { lidClaimJob: ClaimCommand }).lidClaimJob;
    this.command = defined.bind(redis);
  }

  /** Claims `job`, held as `entry`; with a refusal, ends it `error` instead (unless it is final or cancelled). */
  async claim(job: QueuedJob, entry: HeldEntry, refusal: Refusal | null = null): Promise<Claim> {
    const nowMs = Date.now();
    const nowIso = new Date(nowMs).toISOString();
    const running: JobEvent = { type: 'state', state: 'running', at: nowIso };
    const knownName = TENANT_NAME.test(job.tenant);
    const [outcome, text] = await this.command(
      keys.job(job.id),
      keys.jobCancel(job.id),
      keys.jobDequeued(job.id),
      keys.tenantQueued(job.tenant),
      keys.tenantRunning(job.tenant),
      keys.tenant(job.tenant),
      keys.running,
      keys.jobEvents(job.id),
      queueKeys.lock(QUEUES.jobs, entry.id),
      entry.token,
      job.id,
      nowMs,
      nowIso,
      nowMs + LEASE_MS,
      TENANT_DEFAULTS.concurrency,
      knownName ? '1' : '0', // a name no tenant can have has no record: a new tenant's default, as readTenantRecord
      this.resultTtlSeconds,
      STREAM_MAXLEN,
      refusal ? JSON.stringify({ code: refusal.code, message: refusal.message }) : '',
      JSON.stringify(running),
      FINAL_EVENT_MARK,
      CHANNELS.events,
      CHANNELS.final,
    );
    switch (outcome) {
      case 'claimed':
        return { outcome, record: JSON.parse(text!) as JobRecord };
      case 'cancelled':
        return { outcome, record: JSON.parse(text!) as JobRecord };
      case 'error':
        return { outcome: 'refused', record: JSON.parse(text!) as JobRecord };
      case 'skip':
      case 'over_limit':
      case 'lost':
        return { outcome };
      case 'bad_tenant_record':
        return this.badTenantRecord(job.tenant);
      default:
        throw new LidError('internal', `the claim script answered ${String(outcome)}`);
    }
  }

  /** The schema's own error for the tenant's record (the script only saw that its concurrency is unusable). */
  private async badTenantRecord(tenant: string): Promise<never> {
    const text = await this.redis.get(keys.tenant(tenant));
    if (text !== null) parseTenantRecord(tenant, text);
    throw new LidError('internal', `tenant record ${keys.tenant(tenant)}: concurrency must be a whole number >= 1`);
  }
}
