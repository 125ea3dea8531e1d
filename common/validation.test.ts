// The one error for invalid input: a LidError whose details.problems lists every problem by dotted path, and whose
// message names the first three, the way every caller (runtime, queue client, tenants, gateway) reports it.
import { expect, it } from 'vitest';
import { z } from 'zod';
import { isLidError, type LidError } from './errors.js';
import { invalidInput, parseJsonOrThrow, parseOrThrow, problemsIn } from './validation.js';

const Schema = z.strictObject({
  name: z.string().min(1, 'name is empty'),
  limits: z.strictObject({ pids: z.number().int().min(1, 'pids must be at least 1') }).optional(),
  jobs: z.array(z.strictObject({ image: z.string() })).optional(),
  env: z.record(z.string().regex(/^[A-Z]+$/, 'must be upper case'), z.string()).optional(),
});

const thrown = (fn: () => unknown): LidError => {
  try {
    fn();
  } catch (e) {
    if (isLidError(e)) return e;
    throw e;
  }
  throw new Error('nothing was thrown');
};

it('returns the parsed value when the input fits', () => {
  expect(parseOrThrow(Schema, { name: 'x', limits: { pids: 2 } }, 'job')).toEqual({ name: 'x', limits: { pids: 2 } });
});

it('names every problem by its dotted path, nested ones included, in details.problems', () => {
  const e = thrown(() =>
    parseOrThrow(
      Schema,
      { name: '', limits: { pids: 0 }, jobs: [{ image: 'a' }, { image: 1 }], env: { low: 'x' } },
      'job',
    ),
  );
  expect(e.code).toBe('invalid_spec');
  expect(problemsIn(e)).toEqual([
    { path: 'name', message: 'name is empty' },
    { path: 'limits.pids', message: 'pids must be at least 1' },
    { path: 'jobs.1.image', message: expect.stringMatching(/expected string/) },
    { path: 'env.low', message: 'invalid key: must be upper case' },
  ]);
  expect(e.message).toBe(
    'invalid job: name: name is empty; limits.pids: pids must be at least 1; ' +
      `jobs.1.image: ${problemsIn(e)![2]!.message} (and 1 more)`,
  );
});

it('names an unknown field itself, with the hint the caller gives on where the fields are listed', () => {
  const plain = thrown(() => parseOrThrow(Schema, { name: 'x', limits: { pids: 1, cpu: 1 } }, 'run spec'));
  expect(problemsIn(plain)).toEqual([{ path: 'limits.cpu', message: 'unknown field: remove it' }]);
  expect(plain.message).toBe('invalid run spec: limits.cpu: unknown field: remove it');
  const hinted = thrown(() => parseOrThrow(Schema, { name: 'x', sudo: true }, 'job', { fieldsHint: 'see /docs' }));
  expect(problemsIn(hinted)).toEqual([{ path: 'sudo', message: 'unknown field: remove it (see /docs)' }]);
});

it('says what is wrong with the whole input without an empty path in the message', () => {
  const e = thrown(() => parseOrThrow(Schema, [], 'batch'));
  expect(problemsIn(e)).toEqual([{ path: '', message: expect.stringMatching(/expected object/) }]);
  expect(e.message).toMatch(/^invalid batch: Invalid input: expected object/);
});

it('takes another code for data that is not the caller to fix, and reads JSON text the same way', () => {
  expect(thrown(() => parseOrThrow(Schema, {}, 'record', { code: 'internal' })).code).toBe('internal');
  expect(parseJsonOrThrow(Schema, '{"name": "x"}', 'record')).toEqual({ name: 'x' });
  const notJson = thrown(() => parseJsonOrThrow(Schema, '{"name"', 'record', { code: 'internal' }));
  expect(notJson).toMatchObject({ code: 'internal', message: expect.stringMatching(/^invalid record: not JSON: /) });
  expect(problemsIn(notJson)).toEqual([{ path: '', message: expect.stringMatching(/^not JSON: /) }]);
});

it('builds the same error from problems found outside a schema', () => {
  const e = invalidInput([{ path: 'jobs.3.image', message: 'unknown image', known: ['busybox:latest'] }], 'batch');
  expect(e.toJSON()).toEqual({
    code: 'invalid_spec',
    message: 'invalid batch: jobs.3.image: unknown image',
    details: { problems: [{ path: 'jobs.3.image', message: 'unknown image', known: ['busybox:latest'] }] },
  });
  expect(problemsIn(new Error('x'))).toBeNull();
});
