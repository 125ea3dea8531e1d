// Following a job's event stream (keys.jobEvents: state changes, output chunks, then `final`) as it grows.
// Followers hold no Redis connection of their own: each reads new entries without blocking on the gateway's shared
// connection, and in between waits on the gateway's one pub/sub subscription (gateway/job-notifier.ts) for the
// job's id on CHANNELS.events, which every append publishes. A follower ends after `final`, at its deadline, when its
// consumer stops, or when its signal aborts (the client went away).
import { FINAL_STATES, type JobRecord } from '../common/job.js';
import { type JobEvent, JobStore } from '../common/job-store.js';
import { CHANNELS } from '../common/keys.js';
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
  const store = new JobStore(s.redis, s.config.resultTtlSeconds);
  let from = opts.from ?? '0';
  while (!signal?.aborted && Date.now() < until) {
    const quietUntil = Math.min(until, Date.now() + idleMs);
    let entries: StreamEntry[] = [];
    const read = async () => (entries = await store.readEvents(jobId, from)).length > 0;
    // Registered before the first read, so an append between the read and the wait still wakes us.
    await s.notifier.wait(CHANNELS.events, jobId, quietUntil, read, signal);
    if (signal?.aborted) return;
    if (entries.length === 0) await read(); // woken by an append, or quiet until quietUntil
    if (entries.length === 0) {
      if (Date.now() >= quietUntil) yield null;
      continue;
    }
    for (const entry of entries) {
      from = entry.id;
      yield entry;
      if (entry.event.type === 'final') return;
    }
  }
}

/** Resolves when the job has ended, or at the deadline, whichever comes first (one shared subscription). */
export async function waitForFinal(s: Services, jobId: string, until: number, signal?: AbortSignal): Promise<void> {
  await s.notifier.wait(
    CHANNELS.final,
    jobId,
    until,
    async () => {
      const record = await s.jobs.get(jobId);
      return !record || isFinal(record);
    },
    signal,
  );
}
