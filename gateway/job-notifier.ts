// Waking requests when something happens to a job, with one pub/sub subscription per gateway process shared by all
// of them. Workers (and the gateway itself) publish a job's id on two channels (common/keys.ts): CHANNELS.events
// whenever they append to the job's event stream, CHANNELS.final when they store its final record.
// `POST /v1/jobs?wait` waits on CHANNELS.final; every `GET /v1/jobs/:id/events` follower waits on CHANNELS.events
// and then reads the new entries without blocking on the gateway's shared connection.
//
// A blocking read per request would cost a Redis connection per waiting request or open stream: under load that was
// the largest single cost of the all-in-one's event loop, and a few thousand open streams exhausted Redis.
import type { Redis } from 'ioredis';
import { CHANNELS } from '../common/keys.js';

export type JobChannel = typeof CHANNELS.final | typeof CHANNELS.events;

export class JobNotifier {
  private subscriber: Redis | null = null;
  private ready: Promise<void> | null = null;
  /** Wake-up functions by channel and job id. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly connect: () => Redis) {}

  private subscribe(): Promise<void> {
    this.ready ??= (async () => {
      const sub = this.connect();
      this.subscriber = sub;
      sub.on('message', (channel: string, id: string) => {
        for (const wake of this.waiters.get(`${channel} ${id}`) ?? []) wake();
      });
      await sub.subscribe(CHANNELS.final, CHANNELS.events);
    })();
    return this.ready;
  }

  /** How many requests are waiting now, on any channel (for tests and for seeing that none leak). */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /**
   * Resolves when `channel` names the job, at `until` (epoch ms), or when `signal` aborts. `ready` is checked once
   * the subscription is in place and this waiter registered, so news that came just before is not missed.
   */
  async wait(
    channel: JobChannel,
    jobId: string,
    until: number,
    ready: () => Promise<boolean>,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.subscribe();
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const key = `${channel} ${jobId}`;
    const set = this.waiters.get(key) ?? new Set();
    set.add(wake);
    this.waiters.set(key, set);
    const timer = setTimeout(wake, Math.max(0, until - Date.now()));
    signal?.addEventListener('abort', wake, { once: true });
    try {
      if (!signal?.aborted && !(await ready())) await woken;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(key);
    }
  }

  close(): void {
    this.subscriber?.disconnect();
    this.subscriber = null;
    this.ready = null;
  }
}
