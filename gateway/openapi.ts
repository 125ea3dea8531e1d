// The OpenAPI 3.1 document served at /openapi.json, rendered from the routes' own declarations (createRoute in
// gateway/routes/*, collected by OpenAPIHono as they are mounted), so a route cannot exist undocumented or be
// documented with other schemas than those that validate it. Schemas become JSON Schema through zod's own
// z.toJSONSchema, as they always did here: zod-to-openapi (the renderer inside @hono/zod-openapi 1.x, checked with
// 9.1) drops the key rules of records (env names, metadata keys), makes every coerced query number nullable and
// marks unknown-typed fields optional, so its getOpenAPI31Document would document less than Lid checks.
import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi';
import { z } from 'zod';
import { apiSchemas } from './api-schemas.js';

type Json = Record<string, unknown>;
type Definitions = OpenAPIHono['openAPIRegistry']['definitions'];

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, Json & { summary?: string }>>;
  [field: string]: unknown;
}

const isZod = (schema: unknown): schema is z.ZodType => schema instanceof z.ZodType;

/** A named schema by reference (its component); any other zod schema inline; anything else as it was written. */
function schemaOf(schema: unknown): unknown {
  if (!isZod(schema)) return schema;
  const id = apiSchemas.get(schema)?.id;
  if (id) return { $ref: `#/components/schemas/${id}` };
  const { $schema: _s, ...inline } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return inline;
}

function contentOf(content: Record<string, object | undefined>): Json {
  return Object.fromEntries(
    Object.entries(content).map(([mediaType, media]) => [
      mediaType,
      media && 'schema' in media ? { ...media, schema: schemaOf(media.schema) } : media,
    ]),
  );
}

/** One parameter per field of an object schema: its name, whether it must be sent, its description and type. */
function parametersOf(schema: unknown, where: 'path' | 'query' | 'header'): Json[] {
  if (!isZod(schema)) return [];
  const converted = z.toJSONSchema(schema, { io: 'input' }) as { properties?: Record<string, Json>; required?: [] };
  return Object.entries(converted.properties ?? {}).map(([name, { description, ...rest }]) => ({
    name,
    in: where,
    required: where === 'path' || (converted.required ?? []).includes(name as never),
    description,
    schema: rest,
  }));
}

function operationOf(route: RouteConfig): Json {
  const { method: _m, path: _p, request, responses, ...described } = route;
  const parameters = [
    ...parametersOf(request?.params, 'path'),
    ...parametersOf(request?.query, 'query'),
    ...parametersOf(request?.headers, 'header'),
  ];
  return {
    ...described,
    ...(parameters.length ? { parameters } : {}),
    ...(request?.body ? { requestBody: { ...request.body, content: contentOf(request.body.content) } } : {}),
    responses: Object.fromEntries(
      Object.entries(responses).map(([status, response]) => [
        status,
        'content' in response && response.content ? { ...response, content: contentOf(response.content) } : response,
      ]),
    ),
  };
}

// zod reads a schema's metadata from one registry, the global one (where .describe() puts descriptions) unless told
// otherwise; apiSchemas holds the components' examples. Both, then: a component's own entry over the global one.
const withExamples = {
  get: (schema: z.ZodType) => {
    const own = apiSchemas.get(schema);
    const global = z.globalRegistry.get(schema);
    return own || global ? { ...global, ...own } : undefined;
  },
} as unknown as typeof apiSchemas;

function components(): Json {
  const { schemas } = z.toJSONSchema(apiSchemas, {
    metadata: withExamples,
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  // Each schema says its own $schema and $id; inside an OpenAPI document the component's name is its identity.
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]));
}

export function openApiDocument(definitions: Definitions): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const definition of definitions) {
    if (definition.type !== 'route') continue;
    const { route } = definition;
    (paths[route.path] ??= {})[route.method] = operationOf(route);
  }
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
    paths,
    components: {
      schemas: components(),
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'an API key: lid_...' } },
    },
  };
}
