// Waiting for jobs to end, for `POST /v1/jobs?wait=N`: one pub/sub subscription per gateway process to
// lid:final (the worker publishes a job's id there as it stores its final record), shared by every waiting request.
// A blocking read per request would cost a new Redis connection per submission, which under load was the largest
// single cost of the all-in-one's event loop.
import type { Redis } from 'ioredis';
import { FINAL_CHANNEL } from '../common/job-store.js';

export class FinalNotifier {
  private subscriber: Redis | null = null;
  private ready: Promise<void> | null = null;
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly connect: () => Redis) {}

  private subscribe(): Promise<void> {
    this.ready ??= (async () => {
      const sub = this.connect();
      this.subscriber = sub;
      sub.on('message', (_channel: string, id: string) => {
        for (const wake of this.waiters.get(id) ?? []) wake();
      });
      await sub.subscribe(FINAL_CHANNEL);
    })();
    return this.ready;
  }

  /**
   * Resolves when the job ends, at `until` (epoch ms), or when `signal` aborts. `isFinal` is checked once the
   * subscription is in place, so a job that ended just before is not missed.
   */
  async wait(jobId: string, until: number, isFinal: () => Promise<boolean>, signal?: AbortSignal): Promise<void> {
    await this.subscribe();
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const set = this.waiters.get(jobId) ?? new Set();
    set.add(wake);
    this.waiters.set(jobId, set);
    const timer = setTimeout(wake, Math.max(0, until - Date.now()));
    signal?.addEventListener('abort', wake, { once: true });
    try {
      if (!(await isFinal())) await woken;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(jobId);
    }
  }

  close(): void {
    this.subscriber?.disconnect();
    this.subscriber = null;
    this.ready = null;
  }
}
