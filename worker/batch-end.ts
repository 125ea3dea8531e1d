// A batch's callback: each ended job of a batch counts itself in lid:batch:<id>:ended, and the worker whose count
// reaches the batch's size (exactly one does: INCR is atomic) sends the batch's summary -- counts by state and
// every job's final record -- to the batch's callbackUrl.
import type { Redis } from 'ioredis';
import { JOB_STATES, type JobRecord, type JobState } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import type { Callbacks } from './callbacks.js';

interface StoredBatch {
  id: string;
  tenant: string;
  jobIds: string[];
  createdAt: string;
  callbackUrl: string | null;
}

export async function countBatchJobEnded(
  redis: Redis,
  jobs: JobStore,
  callbacks: Callbacks,
  batchId: string,
  ttlSeconds: number,
): Promise<void> {
  const text = await redis.get(`lid:batch:${batchId}`);
  if (!text) return;
  const batch = JSON.parse(text) as StoredBatch;
  const key = `lid:batch:${batchId}:ended`;
  const [[, ended]] = (await redis.multi().incr(key).expire(key, ttlSeconds).exec()) as [[null, number], unknown];
  if (ended !== batch.jobIds.length || !batch.callbackUrl) return;
  const records = (await Promise.all(batch.jobIds.map((id) => jobs.get(id)))).filter((r): r is JobRecord => r !== null);
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  for (const r of records) counts[r.state] += 1;
  await callbacks.sendBatch(batch.callbackUrl, batch.tenant, {
    id: batch.id,
    total: batch.jobIds.length,
    createdAt: batch.createdAt,
    counts,
    jobs: records,
  });
}
