// The cap on concurrent GET /v1/jobs/:id/events streams per tenant (LID_MAX_STREAMS_PER_TENANT): a stream beyond it
// is a 429 saying so. Streams no longer cost Redis a connection each (gateway/job-notifier.ts), but each still
// holds a socket, a little memory and a share of every wake-up in this gateway, so one tenant must not hold them all.
//
// The count is per gateway process, kept in memory, by design. What the cap protects is per process, and a count
// that lives in the process dies with it: a crashed gateway cannot leave a tenant locked out. A cluster-wide count
// in Redis would need a lease per stream, renewed while it is open and expired when its gateway dies, which costs a
// write per stream per renewal and would refuse every stream while Redis is full. With G gateways behind a load
// balancer a tenant may so hold up to G x the cap; set the cap with that in mind.
import { ApiError } from './api-error.js';

/** Suggested wait before retrying: streams end when their jobs do, typically within seconds. */
const RETRY_AFTER_S = 5;

export class StreamCap {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Streams the tenant has open on this gateway now. */
  count(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }

  /** Takes a slot for one stream, or throws 429; the returned release frees it (once, however often called). */
  take(tenant: string): () => void {
    const n = this.count(tenant);
    if (n >= this.max) {
      throw new ApiError(
        'rate_limited',
        `tenant ${tenant} may follow at most ${this.max} event streams at once on this gateway ` +
          `(LID_MAX_STREAMS_PER_TENANT) and has ${n} open: close one, or retry in ${RETRY_AFTER_S} s`,
        { maxStreams: this.max, open: n, retryAfterSeconds: RETRY_AFTER_S },
        { 'Retry-After': String(RETRY_AFTER_S) },
      );
    }
    this.open.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(tenant) - 1;
      if (left > 0) this.open.set(tenant, left);
      else this.open.delete(tenant);
    };
  }
}
