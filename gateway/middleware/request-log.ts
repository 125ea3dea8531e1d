// One structured log line per request (method, path, status, ms, tenant, traceId), at info; errors are logged where
// they are handled (middleware/errors.ts).
import { trace } from '@opentelemetry/api';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { spanTraceId } from '../../common/telemetry.js';
import type { GatewayEnv } from '../deps.js';

export function logRequests({ logger }: { logger: Logger }): MiddlewareHandler<GatewayEnv> {
  return async function logRequests(c, next) {
    const start = performance.now();
    await next();
    logger.info(
      {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - start) * 10) / 10,
        tenant: c.get('tenant')?.name,
        traceId: spanTraceId(trace.getActiveSpan()) ?? undefined,
      },
      'request',
    );
  };
}
