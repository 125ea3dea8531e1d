// How a route of the API is declared: once, with createRoute (@hono/zod-openapi), naming its parameters, body and
// responses with zod schemas; those schemas validate the request and /openapi.json is rendered from the same
// declarations (gateway/openapi.ts). What this module adds to @hono/zod-openapi:
// - invalid input is answered in Lid's envelope (a 400 listing every problem, gateway/api-error.ts), not with
//   zod-openapi's default hook, which answers the raw zod result;
// - a JSON body is read by Lid itself (bodyRoute). zod-openapi's body validator refuses a body whose Content-Type is
//   not JSON (415) and calls every parse failure "Malformed JSON in request body"; Lid has always read the body as
//   JSON whatever its Content-Type (curl -d sends form-urlencoded) and says whether it was empty or not JSON. The
//   body is still declared in the route, read after the query and headers are checked (as the handlers did), and
//   handed to the handler as c.req.valid('json').
import {
  OpenAPIHono,
  type Hook,
  type RouteConfig,
  type RouteConfigToTypedResponse,
  type RouteHandler,
} from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { z } from 'zod';
import { ErrorEnvelopeSchema, SubmitHeadersSchema } from '../common/http-api.js';
import { invalidInput, problemsOf } from '../common/validation.js';
import { ApiError, STATUS_OF } from './api-error.js';
import type { GatewayEnv } from './deps.js';
import { FIELDS_HINT, parseWith, readJson } from './parse.js';

/** The word a 400 uses for where the problems are ("invalid query: wait: ..."). */
const WHERE = { query: 'query', param: 'path', json: 'body', form: 'body', cookie: 'cookies' } as const;

/**
 * Lid's answer to input a route's schemas refuse. A header's rule names the header ("Idempotency-Key must be ..."),
 * so its message is the whole message; other problems are common/validation.ts's one error, as for a body.
 */
export const refuseInvalid: Hook<unknown, GatewayEnv, string, undefined> = (result) => {
  if (result.success) return;
  if (result.target === 'header') {
    const problems = problemsOf(result.error.issues).map((p) => ({ ...p, path: `headers.${p.path}` }));
    throw new ApiError('invalid_spec', problems.map((p) => p.message).join('; '), problems);
  }
  throw invalidInput(problemsOf(result.error.issues, FIELDS_HINT), WHERE[result.target]);
};

/** An app that routes are declared on; mounted with app.route(), its declarations join the parent's document. */
export const openApiApp = () => new OpenAPIHono<GatewayEnv>({ defaultHook: refuseInvalid });

/** A JSON response of the given schema. */
export const jsonResponse = <S extends z.ZodType>(schema: S, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

type ErrorStatus = (typeof STATUS_OF)[keyof typeof STATUS_OF];

const ERROR_MEANING: Partial<Record<ErrorStatus, string>> = {
  400: 'invalid request: details lists each problem as {path, message}',
  401: 'missing, unknown or revoked API key',
  404: 'no such job or batch for this tenant',
  409: 'conflict with the current state',
  413: 'body too large',
  429: 'rate limit or max queued reached: see Retry-After',
  503: 'the queue is unavailable',
};

/** The error responses a route may give, each an error envelope. */
export function errorResponses<S extends ErrorStatus[]>(
  ...statuses: S
): Record<S[number], ReturnType<typeof jsonResponse<typeof ErrorEnvelopeSchema>>> {
  return Object.fromEntries(
    statuses.map((s) => [s, jsonResponse(ErrorEnvelopeSchema, ERROR_MEANING[s] ?? 'error')]),
  ) as Record<S[number], ReturnType<typeof jsonResponse<typeof ErrorEnvelopeSchema>>>;
}

/** A required JSON body of the given schema, for bodyRoute. */
export const jsonBody = <S extends z.ZodType>(schema: S) => ({
  required: true,
  content: { 'application/json': { schema } },
});

/**
 * What every submission route (a job, a batch) takes besides its own query: the Idempotency-Key and traceparent
 * headers and a JSON body; and the errors any submission may meet.
 */
export const submissionRequest = <S extends z.ZodType>(body: S) => ({
  headers: SubmitHeadersSchema,
  body: jsonBody(body),
});
export const submissionErrors = () => errorResponses(400, 401, 409, 413, 429, 503);

type BodyRouteConfig = RouteConfig & {
  request: { body: ReturnType<typeof jsonBody> };
};

/**
 * Declares a route with a JSON body: the document shows the body as declared; the query and headers are validated
 * by zod-openapi; then the body is read and checked (`what` names it in messages: "invalid job: image: ...").
 */
export function bodyRoute<R extends BodyRouteConfig>(
  app: OpenAPIHono<GatewayEnv>,
  route: R,
  what: string,
  handler: RouteHandler<R, GatewayEnv>,
): void {
  app.openAPIRegistry.registerPath(route);
  const { body, ...request } = route.request;
  const schema = body.content['application/json'].schema;
  const withBody = async (c: Context<GatewayEnv>) => {
    c.req.addValidatedData('json', parseWith(schema, await readJson(c), what) as object);
    return (handler as unknown as (c: Context<GatewayEnv>) => Promise<RouteConfigToTypedResponse<R>>)(c);
  };
  // Registered without the body, so zod-openapi adds no body validator, and hidden: the full route is above.
  app.openapi({ ...route, request, hide: true }, withBody as never);
}
