// Bearer API keys: `Authorization: Bearer lid_...` names the tenant every /v1 request acts as. A missing, unknown
// or revoked key is a 401 with `WWW-Authenticate: Bearer` (RFC 6750), which tells clients what to send.
import type { MiddlewareHandler } from 'hono';
import { ApiError } from '../api-error.js';
import type { GatewayEnv } from '../deps.js';
import type { TenantStore } from '../tenants.js';

export interface AuthOptions {
  tenants: TenantStore;
  realm?: string;
}

export function authenticate({ tenants, realm = 'lid' }: AuthOptions): MiddlewareHandler<GatewayEnv> {
  return async function authenticate(c, next) {
    const header = c.req.header('Authorization');
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new ApiError(
        'unauthorized',
        header === undefined
          ? 'missing API key: send Authorization: Bearer <key>'
          : 'malformed Authorization header: send Authorization: Bearer <key>',
        null,
        { 'WWW-Authenticate': `Bearer realm="${realm}"` },
      );
    }
    const tenant = await tenants.authenticate(match[1]!);
    if (!tenant) {
      throw new ApiError('unauthorized', 'unknown or revoked API key', null, {
        'WWW-Authenticate': `Bearer realm="${realm}", error="invalid_token"`,
      });
    }
    c.set('tenant', tenant);
    await next();
  };
}
