// Every failure leaves the gateway as {"error": {"code", "message", "details"}} with the status the code maps to
// (gateway/api-error.ts). Expected errors (ApiError, LidError, Hono's HTTPException) keep their message; Redis's
// "OOM command not allowed" (it reached maxmemory) is a 503 saying Redis is full; anything else is a bug: logged
// with its stack, answered as a bare 500 "internal" that leaks nothing.
import { trace } from '@opentelemetry/api';
import type { ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import { isLidError } from '../../common/errors.js';
import { isRedisFull } from '../../common/redis.js';
import { spanTraceId } from '../../common/telemetry.js';
import { ApiError, type ApiErrorCode, envelope, errorDetails, redisFull, STATUS_OF } from '../api-error.js';

/** What a status means when only the status is known (an HTTPException from Hono itself). */
const CODE_OF_STATUS: Partial<Record<number, ApiErrorCode>> = {
  400: 'invalid_spec',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  429: 'rate_limited',
};

export function handleErrors({ logger }: { logger: Logger }): ErrorHandler {
  return function handleErrors(err, c) {
    if (isRedisFull(err)) {
      // The operator must hear of it: nothing new runs until memory is freed.
      logger.warn({ method: c.req.method, path: c.req.path, err: err.message }, 'Redis is full (maxmemory): 503');
      err = redisFull();
    }
    if (err instanceof ApiError) {
      for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
      return c.json(envelope(err.code, err.message, err.details), err.status);
    }
    if (isLidError(err)) {
      const status = STATUS_OF[err.code];
      if (status >= 500)
        logger.error(
          { err, method: c.req.method, path: c.req.path, traceId: spanTraceId(trace.getActiveSpan()) ?? undefined },
          err.message,
        );
      return c.json(envelope(err.code, err.message, errorDetails(err)), status);
    }
    if (err instanceof HTTPException && err.status < 500) {
      const code = CODE_OF_STATUS[err.status] ?? 'invalid_spec';
      return c.json(envelope(code, err.message || 'bad request'), err.status as ContentfulStatusCode);
    }
    logger.error(
      { err, method: c.req.method, path: c.req.path, traceId: spanTraceId(trace.getActiveSpan()) ?? undefined },
      'unhandled error',
    );
    return c.json(envelope('internal', 'internal error: the gateway logged the details'), 500);
  };
}

export function notFound(): NotFoundHandler {
  return function notFound(c) {
    return c.json(
      envelope('not_found', `no route ${c.req.method} ${c.req.path}: see /docs for the endpoints`),
      STATUS_OF.not_found,
    );
  };
}
