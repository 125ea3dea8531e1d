// Request headers with meaning to the API besides Authorization: Idempotency-Key (a retried submission returns the
// job the first one made) and traceparent (W3C trace context, carried on the queue to the worker).
import type { Context } from 'hono';
import { ApiError } from './api-error.js';

// No ":" allowed: a job's key is stored as lid:idem:<tenant>:<key> and a batch's as lid:idem:<tenant>:batch:<key>
// (common/keys.ts), which must not meet.
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.+/=-]{1,255}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function idempotencyKey(c: Context): string | undefined {
  const key = c.req.header('Idempotency-Key');
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError(
      'invalid_spec',
      'Idempotency-Key must be 1 to 255 characters from A-Z a-z 0-9 _ . + / = - (a UUID works)',
      [{ path: 'headers.Idempotency-Key', message: 'malformed' }],
    );
  }
  return key;
}

/** A well-formed traceparent is passed on; a malformed one is dropped, as the W3C spec asks of a receiver. */
export function traceparent(c: Context): string | undefined {
  const value = c.req.header('traceparent')?.trim().toLowerCase();
  return value && TRACEPARENT.test(value) ? value : undefined;
}
