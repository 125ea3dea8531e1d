// What the dashboard shows besides the queue itself, kept in Redis by the workers and read by the gateway (keys in
// common/keys.ts): the jobs running now (keys.running: a worker's claim adds a job as it starts, worker/claim.ts,
// and the worker removes it as it ends), the jobs that just ended (keys.recent, newest first, capped at RECENT_MAX),
// and each worker's details (keys.worker(id), rewritten by each heartbeat with a TTL, so a dead worker's entry
// fades). The ZSET keys.workers stays the list of workers; these keys only add detail to it.
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

export const RECENT_MAX = 100;
/** Three missed heartbeats (every 5 s) and a worker's details expire. */
export const WORKER_INFO_TTL_SECONDS = 15;

export interface WorkerInfo {
  id: string;
  concurrency: number;
  running: number;
  startedAt: string;
}

export async function markEnded(redis: Redis, jobId: string, final: boolean): Promise<void> {
  const tx = redis.multi().srem(keys.running, jobId);
  // A job requeued by a stopping worker has not ended: it leaves the running set but is not recent.
  if (final)
    tx.lrem(keys.recent, 0, jobId)
      .lpush(keys.recent, jobId)
      .ltrim(keys.recent, 0, RECENT_MAX - 1);
  await tx.exec();
}

export async function publishWorkerInfo(redis: Redis, info: WorkerInfo): Promise<void> {
  await redis.set(keys.worker(info.id), JSON.stringify(info), 'EX', WORKER_INFO_TTL_SECONDS);
}

export async function readWorkerInfo(redis: Redis, ids: string[]): Promise<(WorkerInfo | null)[]> {
  if (!ids.length) return [];
  const texts = await redis.mget(ids.map(keys.worker));
  return texts.map((t) => (t ? (JSON.parse(t) as WorkerInfo) : null));
}
