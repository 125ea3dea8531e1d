// Errors that cross a boundary (library -> CLI, worker -> gateway) carry a stable code, a message a person can act
// on, and optional details. The set of codes is finite so that callers can map each one exhaustively.

export const ERROR_CODES = [
  'invalid_spec', // the caller asked for something malformed or impossible: fix the request
  'not_found', // a named thing (rootfs, image, job) does not exist
  'queue_full', // the tenant has its max queued jobs waiting: retry when some have started
  'invalid_image', // an image or archive is malformed or hostile (bad digest, path escaping its layer, device node)
  'unsupported', // this host cannot do what was asked (kernel feature, cgroup layout)
  'setup_failed', // the sandbox could not be built: a host problem, not the job's fault
  'internal', // a bug in Lid
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class LidError extends Error {
  override readonly name = 'LidError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** True for a LidError from this or another copy of the module (checked by name, as errors cross threads). */
export function isLidError(e: unknown): e is LidError {
  return e instanceof LidError || (e instanceof Error && e.name === 'LidError' && 'code' in e);
}
