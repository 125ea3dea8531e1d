// Reading what a client sent as its body: JSON, checked against a zod schema. Every failure is a 400 that says what
// to fix; nothing a client sends can reach a handler unchecked or become a 500. (Query and headers are checked by
// the routes' declarations, gateway/openapi-app.ts, with the same error shape.)
import type { Context } from 'hono';
import type { z } from 'zod';
import { parseOrThrow } from '../common/validation.js';
import { ApiError } from './api-error.js';

/** Told with each unknown field a client sends. */
export const FIELDS_HINT = 'see /openapi.json for the fields this endpoint takes';

export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') throw new ApiError('invalid_spec', 'body is empty: send a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError('invalid_spec', 'body is not valid JSON', { parser: (e as Error).message });
  }
}

export function parseWith<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
  return parseOrThrow(schema, input, what, { fieldsHint: FIELDS_HINT });
}
