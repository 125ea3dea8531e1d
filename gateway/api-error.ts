// Errors the HTTP API answers with, and the one table that gives each error code its status. Every error leaves the
// gateway as {"error": {"code", "message", "details"}}; the codes are LidError's (common/errors.ts) plus the few that
// only HTTP has (authentication, conflicts, sizes, quotas), listed with the envelope in common/http-api.ts, which
// clients read too. `satisfies Record<ApiErrorCode, ...>` makes the table exhaustive: a code added there without a
// status here fails the typecheck.
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import type { ApiErrorCode, ErrorEnvelope } from '../common/http-api.js';

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

/** One thing to fix in a request: where (dotted path, e.g. "jobs.3.limits.timeoutMs") and what. */
export interface Problem {
  path: string;
  message: string;
  [more: string]: unknown;
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

/** A 400 that lists every problem, with a message naming the first few so a person sees what to fix at once. */
export function invalidRequest(problems: Problem[], what = 'request'): ApiError {
  const shown = problems.slice(0, 3).map((p) => `${p.path || 'body'}: ${p.message}`);
  const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
  return new ApiError('invalid_spec', `invalid ${what}: ${shown.join('; ')}${more}`, problems);
}

/**
 * Zod issues as problems, with paths prefixed (a batch's "jobs.3."). Unknown fields name the field itself, and a
 * bad record key says what is wrong with the key rather than zod's generic "Invalid key in record".
 */
export function problemsOf(issues: readonly z.core.$ZodIssue[], prefix = ''): Problem[] {
  const join = (path: readonly PropertyKey[]) => prefix + path.map(String).join('.');
  return issues.flatMap((issue): Problem[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: join([...issue.path, key]),
        message: 'unknown field: remove it (see /openapi.json for the fields this endpoint takes)',
      }));
    }
    if (issue.code === 'invalid_key') {
      const why = issue.issues.map((i) => i.message).join('; ');
      return [{ path: join(issue.path), message: `invalid key: ${why}` }];
    }
    return [{ path: join(issue.path), message: issue.message }];
  });
}
