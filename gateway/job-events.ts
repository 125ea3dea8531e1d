// Following a job's event stream (lid:job:<id>:events: state changes, output chunks, then `final`) as it grows.
// Each follower blocks on a Redis connection of its own (XREAD BLOCK holds its connection), made when it starts and
// closed when it ends: after `final`, at its deadline, when its consumer stops, or when its signal aborts (the
// client went away), which also breaks off a read in progress.
import { FINAL_STATES, type JobRecord } from '../common/job.js';
import { type JobEvent, JobStore } from '../common/job-store.js';
import type { Services } from './deps.js';

export const isFinal = (r: JobRecord): boolean => FINAL_STATES.includes(r.state);

export interface StreamEntry {
  /** The stream entry id, usable as an SSE id and as `from` to resume after it. */
  id: string;
  event: JobEvent;
}

export interface FollowOptions {
  /** Resume after this entry id; '0' (the default) replays the stream from its start. */
  from?: string;
  /** Stop at this time (epoch ms). */
  until?: number;
  /** Yield null after this long without events (default 15 s), e.g. to send a keep-alive. */
  idleMs?: number;
  signal?: AbortSignal;
}

export async function* followEvents(
  s: Services,
  jobId: string,
  opts: FollowOptions = {},
): AsyncGenerator<StreamEntry | null> {
  const { until = Infinity, idleMs = 15_000, signal } = opts;
  const connection = s.blockingRedis();
  const store = new JobStore(connection, s.config.resultTtlSeconds);
  const hangUp = () => connection.disconnect();
  signal?.addEventListener('abort', hangUp, { once: true });
  try {
    let from = opts.from ?? '0';
    while (!signal?.aborted) {
      const left = until - Date.now();
      if (left <= 0) return;
      let entries: StreamEntry[];
      try {
        // BLOCK 0 would mean "forever": always ask for at least 1 ms.
        entries = await store.readEvents(jobId, from, Math.max(1, Math.min(left, idleMs)));
      } catch (e) {
        if (signal?.aborted) return;
        throw e;
      }
      if (entries.length === 0) yield null;
      for (const entry of entries) {
        from = entry.id;
        yield entry;
        if (entry.event.type === 'final') return;
      }
    }
  } finally {
    signal?.removeEventListener('abort', hangUp);
    connection.disconnect();
  }
}

/** Resolves when the job has ended, or at the deadline, whichever comes first (one shared subscription). */
export async function waitForFinal(s: Services, jobId: string, until: number, signal?: AbortSignal): Promise<void> {
  await s.finals.wait(
    jobId,
    until,
    async () => {
      const record = await s.jobs.get(jobId);
      return !record || isFinal(record);
    },
    signal,
  );
}
