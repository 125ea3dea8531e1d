// One span per request, named after the matched route ("POST /v1/jobs"), continuing the client's trace when it
// sends a W3C traceparent. Handlers run inside it, so the spans they make (enqueue) are its children and log lines
// can name its trace. The route sets lid.job.id on it once the job has an id, which makes it part of the job's
// timeline (common/trace-store.ts).
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { ATTR, contextFromTraceparent, tracer } from '../../common/telemetry.js';
import type { GatewayEnv } from '../deps.js';

export function traceRequests(): MiddlewareHandler<GatewayEnv> {
  return async function traceRequests(c, next) {
    const parent = contextFromTraceparent(c.req.header('traceparent')?.trim().toLowerCase());
    const span = tracer().startSpan(
      `${c.req.method} ${c.req.path}`,
      { kind: SpanKind.SERVER, attributes: { [ATTR.httpMethod]: c.req.method } },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), next);
    } finally {
      // Named after the route pattern, not the path: ids in paths would make every name unique.
      const route = routePath(c, -1);
      span.updateName(`${c.req.method} ${route}`);
      span.setAttribute(ATTR.httpRoute, route);
      span.setAttribute(ATTR.httpStatus, c.res.status);
      const tenant = c.get('tenant')?.name;
      if (tenant) span.setAttribute(ATTR.tenant, tenant);
      if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: c.error?.message ?? '' });
      span.end();
    }
  };
}
