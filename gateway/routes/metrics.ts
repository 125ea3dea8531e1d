// GET /metrics: the gateway's Prometheus registry as text (and, under `lid up`, its worker's too: they share it).
// Public by default, as Prometheus scrapes usually are and as the numbers hold no job data; behind
// `Authorization: Bearer <LID_METRICS_TOKEN>` when that is set. It sits outside /v1, so no tenant key applies.
import { Hono } from 'hono';
import { bearerToken, sameSecret } from '../../common/admin-secret.js';
import { ApiError } from '../api-error.js';
import type { GatewayEnv, Services } from '../deps.js';

export function metricsRoutes(s: Services): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const token = s.config.metricsToken;

  app.get('/metrics', async (c) => {
    if (token && !sameSecret(bearerToken(c.req.header('Authorization')), token)) {
      throw new ApiError('unauthorized', 'send Authorization: Bearer <LID_METRICS_TOKEN>', null, {
        'WWW-Authenticate': 'Bearer realm="lid-metrics"',
      });
    }
    const registry = s.metrics.registry;
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });

  return app;
}
