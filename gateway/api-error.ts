// Errors the HTTP API answers with, and the one table that gives each error code its status. Every error leaves the
// gateway as {"error": {"code", "message", "details"}}; the codes are LidError's (common/errors.ts) plus the few that
// only HTTP has (authentication, conflicts, sizes, quotas), listed with the envelope in common/http-api.ts, which
// clients read too. `satisfies Record<ApiErrorCode, ...>` makes the table exhaustive: a code added there without a
// status here fails the typecheck. Invalid input is common/validation.ts's one error, whose problems become the
// envelope's details (errorDetails).
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { LidError } from '../common/errors.js';
import type { ApiErrorCode, ErrorEnvelope } from '../common/http-api.js';
import { problemsIn } from '../common/validation.js';

export type { ApiErrorCode, ErrorEnvelope } from '../common/http-api.js';

export const STATUS_OF = {
  invalid_spec: 400,
  not_found: 404,
  invalid_image: 400,
  unsupported: 501,
  setup_failed: 503,
  internal: 500,
  unauthorized: 401,
  forbidden: 403,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  queue_full: 429,
  unavailable: 503,
} as const satisfies Record<ApiErrorCode, ContentfulStatusCode>;

/**
 * Redis refused a write because it reached its maxmemory (noeviction: it never drops queued jobs to make room). The
 * request changed nothing that stays; accepted jobs keep running and their results are stored once memory frees.
 */
export function redisFull(): ApiError {
  return new ApiError(
    'unavailable',
    'Redis is full: it has reached its memory limit (maxmemory; LID_REDIS_MAXMEMORY for the embedded one), so ' +
      'Lid takes no new work until finished jobs expire or the operator raises the limit; retry later',
    null,
    { 'Retry-After': '30' },
  );
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** Problems ([{path, message}]) for validation errors; facts about the error otherwise; null when none. */
    readonly details: unknown = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get status(): ContentfulStatusCode {
    return STATUS_OF[this.code];
  }
}

export function envelope(code: ApiErrorCode, message: string, details: unknown = null): ErrorEnvelope {
  return { error: { code, message, details } };
}

/**
 * A LidError's details as the envelope carries them: invalid input's problems as the list [{path, message}] the API
 * documents for a 400, any other error's facts as they are.
 */
export function errorDetails(err: LidError): unknown {
  return problemsIn(err) ?? err.details ?? null;
}
