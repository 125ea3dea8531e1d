// Request headers with meaning to the API besides Authorization: Idempotency-Key (a retried submission returns the
// job the first one made; declared and checked with the routes, common/http-api.ts SubmitHeadersSchema) and
// traceparent (W3C trace context, carried on the queue to the worker).
import type { Context } from 'hono';

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** A well-formed traceparent is passed on; a malformed one is dropped, as the W3C spec asks of a receiver. */
export function traceparent(c: Context): string | undefined {
  const value = c.req.header('traceparent')?.trim().toLowerCase();
  return value && TRACEPARENT.test(value) ? value : undefined;
}
