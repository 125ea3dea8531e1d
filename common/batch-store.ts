// Batches in Redis: keys.batch(id) holds the batch record, which the gateway writes when the batch is submitted and
// reads for GET /v1/batches/:id, and which the workers read when a batch job ends (the worker that ends the last one
// sends the batch's callback; they count themselves in keys.batchEnded(id)). A batch is only a named list of jobs;
// its progress is read from the jobs' own records. Both expire LID_RESULT_TTL after they were written, as the jobs'
// records do after they end.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { JOB_STATES, type JobRecord, type JobState } from './job.js';
import { keys } from './keys.js';
import { parseJsonOrThrow, parseOrThrow } from './validation.js';

export const BatchRecordSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  jobIds: z.array(z.string()),
  createdAt: z.string(),
  /** Where the batch's summary goes once its last job has ended, or null. */
  callbackUrl: z.string().nullable(),
});
export type BatchRecord = z.output<typeof BatchRecordSchema>;

/** How many of the records are in each state (every state present, 0 when none; records gone are not counted). */
export function countByState(records: readonly (JobRecord | null)[]): Record<JobState, number> {
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  for (const r of records) if (r) counts[r.state] += 1;
  return counts;
}

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
  ) {}

  async create(batch: BatchRecord): Promise<void> {
    const what = `batch record ${keys.batch(batch.id)}`;
    const checked = parseOrThrow(BatchRecordSchema, batch, what, { code: 'internal' });
    await this.redis.set(keys.batch(batch.id), JSON.stringify(checked), 'EX', this.ttlSeconds);
  }

  /** The batch, or null when there is none (never made, or expired); a malformed record is refused naming its key. */
  async get(id: string): Promise<BatchRecord | null> {
    const text = await this.redis.get(keys.batch(id));
    if (text === null) return null;
    return parseJsonOrThrow(BatchRecordSchema, text, `batch record ${keys.batch(id)}`, { code: 'internal' });
  }

  /** Counts one more of the batch's jobs as ended; returns how many have ended (exactly one caller sees the last). */
  async countEnded(id: string): Promise<number> {
    const key = keys.batchEnded(id);
    const [[, ended]] = (await this.redis.multi().incr(key).expire(key, this.ttlSeconds).exec()) as [
      [null, number],
      unknown,
    ];
    return ended;
  }
}
