// The gateway's HTTP app: builds it from its dependencies and never listens (gateway/server.ts does), so tests call
// app.request() with no server. Order matters: the body limit and the request log wrap everything; /v1 requires an
// API key and takes a rate-limit token before any /v1 route runs; /healthz, /readyz and the reference are public.
// The app is an OpenAPIHono: the routes declared on the apps mounted here make its /openapi.json.
import type { OpenAPIHono } from '@hono/zod-openapi';
import { BatchStore } from '../common/batch-store.js';
import { createLogger } from '../common/logger.js';
import { createMetrics } from '../common/metrics.js';
import type { GatewayDeps, GatewayEnv, Services } from './deps.js';
import { JobNotifier } from './job-notifier.js';
import { ImageCatalog } from './image-names.js';
import { authenticate } from './middleware/auth.js';
import { limitBody } from './middleware/body-limit.js';
import { handleErrors, notFound } from './middleware/errors.js';
import { rateLimit } from './middleware/rate-limit.js';
import { logRequests } from './middleware/request-log.js';
import { traceRequests } from './middleware/trace.js';
import { Quota } from './quota.js';
import { StreamCap } from './stream-cap.js';
import { batchRoutes } from './routes/batches.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { jobRoutes } from './routes/jobs.js';
import { metaRoutes } from './routes/meta.js';
import { metricsRoutes } from './routes/metrics.js';
import { referenceRoutes } from './routes/reference.js';
import { openApiApp } from './openapi-app.js';

export type { GatewayDeps } from './deps.js';

export function createApp(deps: GatewayDeps): OpenAPIHono<GatewayEnv> {
  const ttl = deps.config.resultTtlSeconds;
  const s: Services = {
    ...deps,
    logger: deps.logger ?? createLogger(deps.config, 'gateway'),
    quota: new Quota(deps.redis, ttl),
    images: new ImageCatalog(deps.redis),
    batches: new BatchStore(deps.redis, ttl),
    notifier: deps.notifier ?? new JobNotifier(deps.blockingRedis),
    streams: deps.streams ?? new StreamCap(deps.config.maxStreamsPerTenant),
    metrics: deps.metrics ?? createMetrics(),
  };

  const app = openApiApp();
  app.onError(handleErrors({ logger: s.logger }));
  app.notFound(notFound());
  app.use(traceRequests()); // outermost, so that the request log line can name the trace
  app.use(logRequests({ logger: s.logger }));
  app.use(limitBody());
  app.use('/v1/*', authenticate({ tenants: s.tenants }), rateLimit({ quota: s.quota }));
  // Mounted in the order the reference lists them: the jobs API first.
  app.route('/v1/jobs', jobRoutes(s));
  app.route('/v1/batches', batchRoutes(s));
  app.route('/', metaRoutes(s));
  app.route('/', referenceRoutes(app));
  // Outside /v1: /metrics is public unless LID_METRICS_TOKEN is set; /dashboard checks LID_ADMIN_TOKEN itself.
  app.route('/', metricsRoutes(s));
  app.route('/', dashboardRoutes(s));
  return app;
}
