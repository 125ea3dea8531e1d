// What the dashboard shows besides the queue itself, kept in Redis by the workers and read by the gateway:
//   lid:running          SET of ids of jobs running now (a worker adds a job as it starts and removes it as it ends)
//   lid:recent           LIST of ids of jobs that just ended, newest first, capped at RECENT_MAX
//   lid:worker:<id>      JSON WorkerInfo, rewritten by each heartbeat with a TTL, so a dead worker's entry fades
// The ZSET lid:workers (gateway/routes/meta.ts) stays the list of workers; these keys only add detail to it.
import type { Redis } from 'ioredis';

export const RUNNING_KEY = 'lid:running';
export const RECENT_KEY = 'lid:recent';
export const RECENT_MAX = 100;
/** Three missed heartbeats (every 5 s) and a worker's details expire. */
export const WORKER_INFO_TTL_SECONDS = 15;
export const workerInfoKey = (id: string) => `lid:worker:${id}`;

export interface WorkerInfo {
  id: string;
  concurrency: number;
  running: number;
  startedAt: string;
}

export async function markRunning(redis: Redis, jobId: string): Promise<void> {
  await redis.sadd(RUNNING_KEY, jobId);
}

export async function markEnded(redis: Redis, jobId: string, final: boolean): Promise<void> {
  const tx = redis.multi().srem(RUNNING_KEY, jobId);
  // A job requeued by a stopping worker has not ended: it leaves the running set but is not recent.
  if (final)
    tx.lrem(RECENT_KEY, 0, jobId)
      .lpush(RECENT_KEY, jobId)
      .ltrim(RECENT_KEY, 0, RECENT_MAX - 1);
  await tx.exec();
}

export async function publishWorkerInfo(redis: Redis, info: WorkerInfo): Promise<void> {
  await redis.set(workerInfoKey(info.id), JSON.stringify(info), 'EX', WORKER_INFO_TTL_SECONDS);
}

export async function readWorkerInfo(redis: Redis, ids: string[]): Promise<(WorkerInfo | null)[]> {
  if (!ids.length) return [];
  const texts = await redis.mget(ids.map(workerInfoKey));
  return texts.map((t) => (t ? (JSON.parse(t) as WorkerInfo) : null));
}
