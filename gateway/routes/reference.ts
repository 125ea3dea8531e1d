// The API reference: /openapi.json, rendered once from the declarations of every route mounted on the app
// (gateway/openapi.ts), and /docs, the HTML page that reads it. Both are public and are not in the document
// themselves: they describe the API rather than belong to it.
import { Hono } from 'hono';
import type { GatewayEnv } from '../deps.js';
import { docsPage } from '../docs-page.js';
import { type OpenApiDocument, openApiDocument } from '../openapi.js';
import type { openApiApp } from '../openapi-app.js';

/** `app` is the app the API's routes are mounted on; they are read at the first request, after all are mounted. */
export function referenceRoutes(app: ReturnType<typeof openApiApp>): Hono<GatewayEnv> {
  const reference = new Hono<GatewayEnv>();
  let document: OpenApiDocument | undefined;
  const current = () => (document ??= openApiDocument(app.openAPIRegistry.definitions));

  reference.get('/openapi.json', (c) => c.json(current()));
  reference.get('/docs', (c) => c.html(docsPage(current())));

  return reference;
}
