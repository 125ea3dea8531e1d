// /openapi.json against the app itself: every route the app answers is in the document and every operation of the
// document is a route the app answers, so the two cannot drift apart again. A few routes are left out on purpose,
// each named here with the reason.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type GatewayHarness, startGatewayHarness } from '../test/gateway-harness.js';
import type { GatewayEnv } from './deps.js';

/** Routes that are not the tenant API, as "METHOD /path" in Hono's spelling. */
const NOT_IN_THE_DOCUMENT = new Map([
  ['GET /openapi.json', 'the document itself'],
  ['GET /docs', 'the page that renders the document'],
  ['GET /metrics', "the operator's Prometheus scrape, with its own token (LID_METRICS_TOKEN)"],
  ['GET /dashboard', "the operator's dashboard, behind LID_ADMIN_TOKEN"],
  ['GET /dashboard/api/overview', "the dashboard's own data"],
  ['GET /dashboard/api/jobs/:id/trace', "the dashboard's own data"],
]);

let h: GatewayHarness;
let app: Hono<GatewayEnv>;
let doc: {
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
  components: { schemas: Record<string, unknown> };
};

beforeAll(async () => {
  h = await startGatewayHarness();
  ({ app } = h.gateway());
  doc = (await call(app, 'GET', '/openapi.json')).body;
});
afterAll(() => h?.close());

/** "GET /v1/jobs/:id" for each handler the app routes (middleware, registered as ALL, left out). */
function appRoutes(): Set<string> {
  return new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`));
}

function documentRoutes(): Set<string> {
  return new Set(
    Object.entries(doc.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    ),
  );
}

describe('the OpenAPI document', () => {
  it('lists every route the app answers, except those named as not part of the API', () => {
    const documented = documentRoutes();
    const missing = [...appRoutes()].filter((r) => !documented.has(r) && !NOT_IN_THE_DOCUMENT.has(r));
    expect(missing, 'routes the app answers that /openapi.json does not list').toEqual([]);
  });

  it('lists only routes the app answers', () => {
    const routes = appRoutes();
    expect([...documentRoutes()].filter((r) => !routes.has(r))).toEqual([]);
    // The exceptions are real routes too: a renamed one must leave the list.
    expect([...NOT_IN_THE_DOCUMENT.keys()].filter((r) => !routes.has(r))).toEqual([]);
  });

  it('declares the bodies the handlers read, by reference to their schemas', () => {
    const body = (path: string) => doc.paths[path]!.post!.requestBody!.content['application/json']!.schema;
    expect(body('/v1/jobs')).toEqual({ $ref: '#/components/schemas/JobRequest' });
    expect(body('/v1/batches')).toEqual({ $ref: '#/components/schemas/BatchRequest' });
  });

  it('refers only to schemas it holds', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(10);
    expect(refs.filter((name) => !(name in doc.components.schemas))).toEqual([]);
  });
});
