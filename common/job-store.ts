// Where jobs live in Redis, shared by the gateway (which creates and reads them) and the workers (which run them):
//   lid:job:<id>          the JobRecord as JSON
//   lid:job:<id>:events   a stream of what happened: state changes, output chunks, the final record (stored as a
//                         mark that readEvents fills from lid:job:<id>, so the output it holds is kept once)
//   lid:idem:<tenant>:<k> Idempotency-Key -> job id
//   lid:cancel            pub/sub channel: ids of jobs to cancel now
//   lid:final             pub/sub channel: ids of jobs that just ended
//   lid:events            pub/sub channel: ids of jobs whose event stream just grew (the gateway's SSE followers)
// Records and streams expire LID_RESULT_TTL after the job ends. The BullMQ queue itself is `lid-jobs`.
import type { Redis } from 'ioredis';
import type { JobRecord, JobState } from './job.js';

export const QUEUE_NAME = 'lid-jobs';
export const QUEUE_PREFIX = 'lid';
export const CANCEL_CHANNEL = 'lid:cancel';
/** pub/sub channel: ids of jobs whose final record was just stored (the gateway's ?wait listens). */
export const FINAL_CHANNEL = 'lid:final';
/** pub/sub channel: ids of jobs whose event stream just grew (wakes the gateway's /events followers). */
export const EVENTS_CHANNEL = 'lid:events';
const STREAM_MAXLEN = 10_000;

const COMPARE_AND_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1`;

const recordKey = (id: string) => `lid:job:${id}`;
export const eventsKey = (id: string) => `lid:job:${id}:events`;
const cancelKey = (id: string) => `lid:job:${id}:cancel`;

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
    await this.redis.set(recordKey(record.id), JSON.stringify(record));
  }

  async get(id: string): Promise<JobRecord | null> {
    const text = await this.redis.get(recordKey(id));
    return text ? (JSON.parse(text) as JobRecord) : null;
  }

  /**
   * Applies a change to a record, retrying if another writer changed it meanwhile. A compare-and-set in one Lua
   * script (not WATCH/MULTI, which is per connection and would mix up concurrent updates sharing a connection).
   */
  async update(id: string, change: (record: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    for (;;) {
      const text = await this.redis.get(recordKey(id));
      const current = text ? (JSON.parse(text) as JobRecord) : null;
      const next = current && change(current);
      if (!next) return current;
      const ttl = next.finishedAt ? this.resultTtlSeconds : 0;
      if ((await this.redis.eval(COMPARE_AND_SET, 1, recordKey(id), text!, JSON.stringify(next), ttl)) === 1)
        return next;
    }
  }

  /**
   * Appends an event. A final event is written without its record, which is already stored under lid:job:<id> by
   * then (records are final before their final event, and never change after): a record can carry megabytes of
   * output, and a second copy in the stream would double what Redis keeps of every finished job.
   */
  async emit(id: string, event: JobEvent): Promise<void> {
    const key = eventsKey(id);
    const stored = event.type === 'final' ? '{"type":"final"}' : JSON.stringify(event);
    const tx = this.redis.multi().xadd(key, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'event', stored);
    // Published after the entry is in: a follower woken by it finds the entry.
    tx.publish(EVENTS_CHANNEL, id);
    if (event.type === 'final') tx.expire(key, this.resultTtlSeconds).publish(FINAL_CHANNEL, id);
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
      eventsKey(id),
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
    await this.redis.multi().set(cancelKey(id), '1', 'EX', this.resultTtlSeconds).publish(CANCEL_CHANNEL, id).exec();
  }

  async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(cancelKey(id))) === 1;
  }

  /**
   * Removes records and event streams that nobody was told about (a submission that failed half-way on a full
   * Redis, where the update marking them failed is refused but DEL is not).
   */
  async discard(ids: string[]): Promise<void> {
    if (ids.length) await this.redis.del(...ids.flatMap((id) => [recordKey(id), eventsKey(id)]));
  }

  /** Frees an Idempotency-Key that still names `id`, so that a retry of a failed submission is not held to it. */
  async releaseIdempotencyKey(tenant: string, key: string, id: string): Promise<void> {
    const k = `lid:idem:${tenant}:${key}`;
    if ((await this.redis.get(k)) === id) await this.redis.del(k);
  }

  /** Maps an Idempotency-Key to a job id once; returns the id that holds the key (maybe an earlier job's). */
  async claimIdempotencyKey(tenant: string, key: string, id: string): Promise<string> {
    const k = `lid:idem:${tenant}:${key}`;
    const set = await this.redis.set(k, id, 'EX', this.resultTtlSeconds, 'NX');
    return set ? id : ((await this.redis.get(k)) ?? id);
  }
}
