// The OpenAPI 3.1 document served at /openapi.json, generated from the same zod schemas that validate requests
// (common/job.ts, gateway/api-schemas.ts) with z.toJSONSchema, so the reference cannot drift from the checks.
// Built once, on first request.
import { z } from 'zod';
import { STATUS_OF } from './api-error.js';
import { apiSchemas, PageQuerySchema, WaitQuerySchema } from './api-schemas.js';

type Json = Record<string, unknown>;
type Operation = Json & { summary: string };

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, Operation>>;
  [field: string]: unknown;
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (id: string, description: string) => ({
  description,
  content: { 'application/json': { schema: ref(id) } },
});

const ERROR_MEANING: Record<number, string> = {
  400: 'invalid request: details lists each problem as {path, message}',
  401: 'missing, unknown or revoked API key',
  404: 'no such job or batch for this tenant',
  409: 'conflict with the current state',
  413: 'body too large',
  429: 'rate limit or max queued reached: see Retry-After',
  503: 'the queue is unavailable',
};
const errors = (...statuses: (typeof STATUS_OF)[keyof typeof STATUS_OF][]) =>
  Object.fromEntries(statuses.map((s) => [String(s), json('Error', ERROR_MEANING[s] ?? 'error')]));

/** Query parameters from a zod object schema: name, description and type come from the schema itself. */
function queryParameters(schema: z.ZodObject): Json[] {
  const converted = z.toJSONSchema(schema, { io: 'input' }) as { properties: Record<string, Json> };
  return Object.entries(converted.properties).map(([name, { description, ...rest }]) => ({
    name,
    in: 'query',
    required: false,
    description,
    schema: rest,
  }));
}

const idParam = (what: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description: what,
});
const idempotencyParam = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  schema: { type: 'string', pattern: '^[A-Za-z0-9_.+/=-]{1,255}$' },
  description: 'a retried submission with the same key returns the job (or batch) the first one made',
};

function paths(): OpenApiDocument['paths'] {
  const publicOp = { security: [] };
  return {
    '/v1/jobs': {
      post: {
        summary: 'Submit a job',
        description:
          'Queues a job. With ?wait=N, answers 200 with the finished record if the job ends within N seconds.',
        parameters: [...queryParameters(WaitQuerySchema), idempotencyParam],
        requestBody: { required: true, content: { 'application/json': { schema: ref('JobRequest') } } },
        responses: {
          200: json('JobRecord', 'the job ended within ?wait'),
          202: json('JobRecord', 'the job is queued (or still running at the end of ?wait)'),
          ...errors(400, 401, 409, 413, 429, 503),
        },
      },
    },
    '/v1/jobs/{id}': {
      get: {
        summary: "Read a job's record",
        parameters: [idParam('job id')],
        responses: { 200: json('JobRecord', 'the record'), ...errors(401, 404) },
      },
      delete: {
        summary: 'Cancel a job',
        description: 'A queued job is cancelled at once (200); a running one is killed within a second (202).',
        parameters: [idParam('job id')],
        responses: {
          200: json('JobRecord', 'cancelled before it started'),
          202: json('JobRecord', 'running: the worker kills it and records it cancelled'),
          ...errors(401, 404, 409),
        },
      },
    },
    '/v1/jobs/{id}/events': {
      get: {
        summary: "Follow a job's events (Server-Sent Events)",
        description:
          'Events `state` {state, at}, `output` {stream, data, encoding} as they happen, then `final` with the ' +
          'record, and the stream closes. Send Last-Event-ID to resume after an event.',
        parameters: [idParam('job id')],
        responses: {
          200: { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          ...errors(401, 404),
        },
      },
    },
    '/v1/jobs/{id}/trace': {
      get: {
        summary: "Read a job's trace: its spans from the gateway and the worker",
        description:
          'Spans {name, spanId, parentSpanId, start, durationMs, attributes (lid.*), status} sorted by start, with ' +
          'no tracing backend needed. A span whose parent is not listed continues the client traceparent.',
        parameters: [idParam('job id')],
        responses: {
          200: {
            description: 'the trace id (null when the job has none) and the spans recorded so far',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
          ...errors(401, 404),
        },
      },
    },
    '/v1/batches': {
      post: {
        summary: 'Submit a batch of up to 1000 jobs',
        description: 'All jobs are checked first: one bad spec is a 400 naming jobs.<i>.<field> and none is queued.',
        parameters: [idempotencyParam],
        requestBody: { required: true, content: { 'application/json': { schema: ref('BatchRequest') } } },
        responses: { 202: json('BatchCreated', 'the jobs are queued'), ...errors(400, 401, 409, 413, 429, 503) },
      },
    },
    '/v1/batches/{id}': {
      get: {
        summary: 'Read a batch: counts by state and a page of its jobs',
        parameters: [idParam('batch id'), ...queryParameters(PageQuerySchema)],
        responses: { 200: json('Batch', 'the batch'), ...errors(400, 401, 404) },
      },
    },
    '/v1/images': {
      get: { summary: 'Images the workers offer', responses: { 200: json('Images', 'sorted names'), ...errors(401) } },
    },
    '/healthz': { get: { ...publicOp, summary: 'The gateway is up', responses: { 200: json('Health', 'up') } } },
    '/readyz': {
      get: {
        ...publicOp,
        summary: 'Redis is reachable and a worker is present',
        responses: { 200: json('Ready', 'ready'), 503: json('Ready', 'not ready: reasons says why') },
      },
    },
  };
}

function buildDocument(): OpenApiDocument {
  const { schemas } = z.toJSONSchema(apiSchemas, {
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  // Each schema says its own $schema and $id; inside an OpenAPI document the component's name is its identity.
  const components = Object.fromEntries(
    Object.entries(schemas).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'Lid',
      version: '1',
      description:
        'Run untrusted commands in fresh, limited Linux containers. Every error is {"error": {code, message, details}}.',
    },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    paths: paths(),
    components: {
      schemas: components,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an API key: lid_...' } },
    },
  };
}

let document: OpenApiDocument | undefined;
export const openApiDocument = (): OpenApiDocument => (document ??= buildDocument());
