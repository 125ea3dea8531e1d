// Where jobs live in Redis, shared by the gateway (which creates and reads them) and the workers (which run them):
// each job's record, its event stream (state changes, output chunks, the final record, stored as a mark that
// readEvents fills from the record, so the output it holds is kept once), its cancel flag, the Idempotency-Keys
// that name it, and the channels that announce cancels, ends and new events. The keys and channels themselves, with
// their types and lifetimes, are in common/keys.ts. Records and streams expire LID_RESULT_TTL after the job ends.
import type { Redis } from 'ioredis';
import type { JobRecord, JobState } from './job.js';
import { CHANNELS, keys } from './keys.js';

/** About how many events a job's stream keeps (XADD MAXLEN ~). */
export const STREAM_MAXLEN = 10_000;
/** The stream entry of a final event: a mark, which readEvents fills from the record (see emit). */
export const FINAL_EVENT_MARK = '{"type":"final"}';

const COMPARE_AND_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1`;

/** Whether an Idempotency-Key names a job or a batch: the two are kept apart. */
export type IdempotencyScope = 'job' | 'batch';
const idempotencyKey = (tenant: string, key: string, of: IdempotencyScope) =>
  of === 'batch' ? keys.batchIdempotency(tenant, key) : keys.idempotency(tenant, key);

export type JobEvent =
  | { type: 'state'; state: JobState; at: string }
  | { type: 'output'; stream: 'stdout' | 'stderr'; data: string; encoding: 'utf8' | 'base64' }
  | { type: 'final'; record: JobRecord };

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly resultTtlSeconds: number,
  ) {}

  async create(record: JobRecord): Promise<void> {
    await this.redis.set(keys.job(record.id), JSON.stringify(record));
  }

  async get(id: string): Promise<JobRecord | null> {
    const text = await this.redis.get(keys.job(id));
    return text ? (JSON.parse(text) as JobRecord) : null;
  }

  /**
   * Applies a change to a record, retrying if another writer changed it meanwhile. A compare-and-set in one Lua
   * script (not WATCH/MULTI, which is per connection and would mix up concurrent updates sharing a connection).
   */
  async update(id: string, change: (record: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    for (;;) {
      const text = await this.redis.get(keys.job(id));
      const current = text ? (JSON.parse(text) as JobRecord) : null;
      const next = current && change(current);
      if (!next) return current;
      const ttl = next.finishedAt ? this.resultTtlSeconds : 0;
      if ((await this.redis.eval(COMPARE_AND_SET, 1, keys.job(id), text!, JSON.stringify(next), ttl)) === 1)
        return next;
    }
  }

  /**
   * Appends an event. A final event is written without its record, which is already stored under keys.job(id) by
   * then (records are final before their final event, and never change after): a record can carry megabytes of
   * output, and a second copy in the stream would double what Redis keeps of every finished job.
   */
  async emit(id: string, event: JobEvent): Promise<void> {
    const key = keys.jobEvents(id);
    const stored = event.type === 'final' ? FINAL_EVENT_MARK : JSON.stringify(event);
    const tx = this.redis.multi().xadd(key, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'event', stored);
    // Published after the entry is in: a follower woken by it finds the entry.
    tx.publish(CHANNELS.events, id);
    if (event.type === 'final') tx.expire(key, this.resultTtlSeconds).publish(CHANNELS.final, id);
    await tx.exec();
  }

  /**
   * Reads events after `from` ('0' for all): at once, or waiting up to blockMs for new ones (which holds the
   * connection: give it one of its own). A final event comes with the job's record; if the record has expired
   * meanwhile, the final event is left out.
   */
  async readEvents(id: string, from: string, blockMs?: number): Promise<{ id: string; event: JobEvent }[]> {
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    const res = (await this.redis.xread(
      'COUNT',
      500,
      ...(block as ['BLOCK', number]),
      'STREAMS',
      keys.jobEvents(id),
      from,
    )) as [string, [string, string[]][]][] | null;
    if (!res) return [];
    const entries: { id: string; event: JobEvent }[] = [];
    for (const [entryId, fields] of res[0]![1]) {
      const event = JSON.parse(fields[1]!) as JobEvent | { type: 'final'; record?: undefined };
      if (event.type !== 'final' || event.record) entries.push({ id: entryId, event: event as JobEvent });
      else {
        const record = await this.get(id);
        if (record) entries.push({ id: entryId, event: { type: 'final', record } });
      }
    }
    return entries;
  }

  async requestCancel(id: string): Promise<void> {
    await this.redis
      .multi()
      .set(keys.jobCancel(id), '1', 'EX', this.resultTtlSeconds)
      .publish(CHANNELS.cancel, id)
      .exec();
  }

  async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(keys.jobCancel(id))) === 1;
  }

  /**
   * Removes records and event streams that nobody was told about (a submission that failed half-way on a full
   * Redis, where the update marking them failed is refused but DEL is not).
   */
  async discard(ids: string[]): Promise<void> {
    if (ids.length) await this.redis.del(...ids.flatMap((id) => [keys.job(id), keys.jobEvents(id)]));
  }

  /** Frees an Idempotency-Key that still names `id`, so that a retry of a failed submission is not held to it. */
  async releaseIdempotencyKey(tenant: string, key: string, id: string, of: IdempotencyScope = 'job'): Promise<void> {
    const k = idempotencyKey(tenant, key, of);
    if ((await this.redis.get(k)) === id) await this.redis.del(k);
  }

  /**
   * Maps an Idempotency-Key to a job (or batch) id once; returns the id that holds the key (maybe an earlier one's).
   * A job and a batch may use the same key without meeting.
   */
  async claimIdempotencyKey(tenant: string, key: string, id: string, of: IdempotencyScope = 'job'): Promise<string> {
    const k = idempotencyKey(tenant, key, of);
    const set = await this.redis.set(k, id, 'EX', this.resultTtlSeconds, 'NX');
    return set ? id : ((await this.redis.get(k)) ?? id);
  }
}
