// The error LidClient throws when the gateway refuses a request: the code, message and details of the API's error
// envelope ({"error": {code, message, details}}), with the HTTP status and, for 429 and 503, how long the gateway
// asked to wait. Shaped like LidError (code, message, details, toJSON) and checked by name as well as instanceof,
// so that a copy of the module loaded twice still recognises it.
import type { ApiErrorCode } from './http-api.js';

export class LidApiError extends Error {
  override readonly name = 'LidApiError';
  constructor(
    /** The envelope's code; a code this client does not know yet arrives as it is. */
    readonly code: ApiErrorCode | (string & {}),
    message: string,
    readonly details: unknown,
    /** The HTTP status; null when no answer came (the gateway is unreachable or the connection broke). */
    readonly status: number | null,
    /** From Retry-After: how long the gateway asked the client to wait before retrying. */
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  toJSON(): { code: string; message: string; details: unknown; status: number | null } {
    return { code: this.code, message: this.message, details: this.details, status: this.status };
  }
}

export function isLidApiError(e: unknown): e is LidApiError {
  return e instanceof LidApiError || (e instanceof Error && e.name === 'LidApiError' && 'code' in e);
}
