// One structured log line per request (method, path, status, ms, tenant), at info; errors are logged where they are
// handled (middleware/errors.ts).
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
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
      },
      'request',
    );
  };
}
