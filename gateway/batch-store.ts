// Batches in Redis: lid:batch:<id> holds {id, tenant, jobIds, createdAt, callbackUrl} as JSON. A batch is only a
// named list of jobs; its progress is read from the jobs' own records. It expires LID_RESULT_TTL after it was
// made, as its jobs' records do after they end.
import type { Redis } from 'ioredis';

const batchKey = (id: string) => `lid:batch:${id}`;

export interface BatchRecord {
  id: string;
  tenant: string;
  jobIds: string[];
  createdAt: string;
  callbackUrl: string | null;
}

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
  ) {}

  async create(batch: BatchRecord): Promise<void> {
    await this.redis.set(batchKey(batch.id), JSON.stringify(batch), 'EX', this.ttlSeconds);
  }

  async get(id: string): Promise<BatchRecord | null> {
    const text = await this.redis.get(batchKey(id));
    return text ? (JSON.parse(text) as BatchRecord) : null;
  }
}
