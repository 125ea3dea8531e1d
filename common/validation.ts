// How input that fails its schema is reported, everywhere: one LidError (invalid_spec unless the caller says the
// data is its own, e.g. a stored record) whose details.problems lists every problem as {path, message}, with a
// message naming the first few so a person sees what to fix at once. The runtime, the queue client, the tenant store
// and the gateway all go through parseOrThrow; the gateway answers such an error with its 400 envelope, whose
// details are the problems (gateway/api-error.ts).
import type { z } from 'zod';
import { type ErrorCode, isLidError, LidError } from './errors.js';

/** One thing to fix: where (dotted path, e.g. "jobs.3.limits.timeoutMs"; "" for the whole input) and what. */
export interface Problem {
  path: string;
  message: string;
  [more: string]: unknown;
}

/** How many problems the message names; details.problems holds them all. */
const SHOWN = 3;

export interface ParseOptions {
  /** The error's code: invalid_spec (the default) for the caller's input, internal for data Lid wrote itself. */
  code?: ErrorCode;
  /** Where the accepted fields are listed, told with each unknown field (the gateway: its OpenAPI document). */
  fieldsHint?: string;
}

/**
 * Zod issues as problems. Unknown fields name the field itself (and where the accepted ones are listed), and a bad
 * record key says what is wrong with the key rather than zod's generic "Invalid key in record".
 */
export function problemsOf(issues: readonly z.core.$ZodIssue[], fieldsHint?: string): Problem[] {
  const join = (path: readonly PropertyKey[]) => path.map(String).join('.');
  const unknown = `unknown field: remove it${fieldsHint ? ` (${fieldsHint})` : ''}`;
  return issues.flatMap((issue): Problem[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: join([...issue.path, key]), message: unknown }));
    }
    if (issue.code === 'invalid_key') {
      const why = issue.issues.map((i) => i.message).join('; ');
      return [{ path: join(issue.path), message: `invalid key: ${why}` }];
    }
    return [{ path: join(issue.path), message: issue.message }];
  });
}

/**
 * The one error for invalid input: "invalid <what>: <path>: <message>; ..." naming the first three problems (and
 * how many more there are), with every problem in details.problems.
 */
export function invalidInput(problems: Problem[], what: string, code: ErrorCode = 'invalid_spec'): LidError {
  const shown = problems.slice(0, SHOWN).map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
  const more = problems.length > SHOWN ? ` (and ${problems.length - SHOWN} more)` : '';
  return new LidError(code, `invalid ${what}: ${shown.join('; ')}${more}`, { problems });
}

/**
 * `input` checked against `schema`: its parsed value, or the one error naming what is wrong. `what` names the input
 * in the message ("job", "run spec", "tenant settings").
 */
export function parseOrThrow<T extends z.ZodType>(
  schema: T,
  input: unknown,
  what: string,
  opts: ParseOptions = {},
): z.output<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw invalidInput(problemsOf(parsed.error.issues, opts.fieldsHint), what, opts.code);
}

/** `text` read as JSON and checked against `schema`, as parseOrThrow does; text that is not JSON is one problem. */
export function parseJsonOrThrow<T extends z.ZodType>(
  schema: T,
  text: string,
  what: string,
  opts: ParseOptions = {},
): z.output<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalidInput([{ path: '', message: `not JSON: ${(e as Error).message}` }], what, opts.code);
  }
  return parseOrThrow(schema, json, what, opts);
}

/** The problems of an error made by invalidInput or parseOrThrow, or null for any other error. */
export function problemsIn(e: unknown): Problem[] | null {
  if (!isLidError(e)) return null;
  const problems = e.details?.problems;
  return Array.isArray(problems) ? (problems as Problem[]) : null;
}
