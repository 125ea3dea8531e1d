// A batch's callback: each ended job of a batch counts itself (BatchStore.countEnded), and the worker whose count
// reaches the batch's size (exactly one does: INCR is atomic) sends the batch's summary -- counts by state and
// every job's final record -- to the batch's callbackUrl.
import type { Redis } from 'ioredis';
import { BatchStore, countByState } from '../common/batch-store.js';
import type { JobRecord } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import type { Callbacks } from './callbacks.js';

export async function countBatchJobEnded(
  redis: Redis,
  jobs: JobStore,
  callbacks: Callbacks,
  batchId: string,
  ttlSeconds: number,
): Promise<void> {
  const batches = new BatchStore(redis, ttlSeconds);
  const batch = await batches.get(batchId);
  if (!batch) return;
  const ended = await batches.countEnded(batchId);
  if (ended !== batch.jobIds.length || !batch.callbackUrl) return;
  const records = (await Promise.all(batch.jobIds.map((id) => jobs.get(id)))).filter((r): r is JobRecord => r !== null);
  await callbacks.sendBatch(batch.callbackUrl, batch.tenant, {
    id: batch.id,
    total: batch.jobIds.length,
    createdAt: batch.createdAt,
    counts: countByState(records),
    jobs: records,
  });
}
