// GET /metrics: the gateway's Prometheus registry as text (and, under `lid up`, its worker's too: they share it).
// It sits on the public gateway port, outside /v1 (no tenant key applies), so by default it answers only clients on
// this machine (loopback): the numbers name tenants and images and show the service's load. LID_METRICS_TOKEN
// opens it to whoever sends `Authorization: Bearer <token>`, from anywhere; LID_METRICS_PUBLIC=true opens it to all.
// Behind a reverse proxy on the same machine every client looks local: set a token there.
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { isIP } from 'node:net';
import { bearerToken, sameSecret } from '../../common/admin-secret.js';
import { ApiError } from '../api-error.js';
import type { GatewayEnv, Services } from '../deps.js';

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x (::ffff:127.0.0.1); false for anything else, unknown included. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(address) === 6 && /^(0{0,4}:){1,7}0{0,3}1$|^::1$/.test(address.toLowerCase());
}

export type MetricsAccess = 'allowed' | 'needs_token' | 'local_only';

/** Who may scrape: a pure function of the request's remote address, its Authorization header and the settings. */
export function metricsAccess(
  remote: string | undefined,
  authorization: string | undefined,
  settings: { token?: string | undefined; public: boolean },
): MetricsAccess {
  if (settings.token) return sameSecret(bearerToken(authorization), settings.token) ? 'allowed' : 'needs_token';
  return settings.public || isLoopback(remote) ? 'allowed' : 'local_only';
}

/** The client's address as the HTTP server saw it; undefined under app.request with no server (tests). */
function remoteAddress(c: Context<GatewayEnv>): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

export function metricsRoutes(s: Services): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const settings = { token: s.config.metricsToken, public: s.config.metricsPublic };

  app.get('/metrics', async (c) => {
    const access = metricsAccess(remoteAddress(c), c.req.header('Authorization'), settings);
    if (access === 'needs_token') {
      throw new ApiError('unauthorized', 'send Authorization: Bearer <LID_METRICS_TOKEN>', null, {
        'WWW-Authenticate': 'Bearer realm="lid-metrics"',
      });
    }
    if (access === 'local_only') {
      throw new ApiError(
        'forbidden',
        "GET /metrics answers only clients on the gateway's own machine: the operator can set LID_METRICS_TOKEN " +
          '(then send it as a Bearer token) or LID_METRICS_PUBLIC=true to let others scrape',
      );
    }
    const registry = s.metrics.registry;
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });

  return app;
}
