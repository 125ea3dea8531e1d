// Each authenticated request takes a token from its tenant's bucket (gateway/quota.ts): reads count too, since
// polling floods a gateway as surely as submissions do. Over the rate: 429 with Retry-After.
import type { MiddlewareHandler } from 'hono';
import type { GatewayEnv } from '../deps.js';
import type { Quota } from '../quota.js';

export function rateLimit({ quota }: { quota: Quota }): MiddlewareHandler<GatewayEnv> {
  return async function rateLimit(c, next) {
    await quota.takeToken(c.get('tenant'));
    await next();
  };
}
