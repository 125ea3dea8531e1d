// Bodies larger than maxBytes are refused with 413 in the error envelope before they are read whole (Hono's
// bodyLimit counts while it reads when there is no Content-Length, so a lying or missing header does not help).
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { formatSize } from '../../common/units.js';
import { envelope, STATUS_OF } from '../api-error.js';

/** Holds a job with several MiB of files, or a batch of 1000 ordinary jobs; bulk data belongs in an image. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export function limitBody({ maxBytes = MAX_BODY_BYTES }: { maxBytes?: number } = {}): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) =>
      c.json(
        envelope('payload_too_large', `the body is larger than ${formatSize(maxBytes)}: send less`, { maxBytes }),
        STATUS_OF.payload_too_large,
      ),
  });
}
