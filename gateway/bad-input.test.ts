// Bad input through the API: malformed JSON, wrong types, unknown fields, absurd limits, too many files, unknown
// images, oversized bodies, odd paths and queries. Each is a 4xx in the error envelope that says what to fix (the
// problem's path in details), never a 500.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../common/keys.js';
import {
  call,
  expectError,
  type GatewayHarness,
  startGatewayHarness,
  type TestTenant,
} from '../test/gateway-harness.js';
import type { GatewayEnv } from './deps.js';

let h: GatewayHarness;
let app: Hono<GatewayEnv>;
let acme: TestTenant;

beforeAll(async () => {
  h = await startGatewayHarness();
  ({ app } = h.gateway());
  acme = await h.tenant();
});
afterAll(() => h?.close());

const job = { image: 'busybox', command: ['echo', 'hi'] };
const submit = (body: unknown) => call(app, 'POST', '/v1/jobs', { tenant: acme, body });

describe('bad input is a 4xx envelope that says what to fix, never a 500', () => {
  const bad: [string, { raw?: string; body?: unknown; query?: string }, number, string, string?][] = [
    ['malformed JSON', { raw: '{"image": "busybox",' }, 400, 'invalid_spec'],
    ['an empty body', { raw: '' }, 400, 'invalid_spec'],
    ['an array', { body: [job] }, 400, 'invalid_spec', ''],
    ['a missing image', { body: { command: ['ls'] } }, 400, 'invalid_spec', 'image'],
    ['a command that is a string', { body: { image: 'busybox', command: 'ls -l' } }, 400, 'invalid_spec', 'command'],
    ['an unknown field', { body: { ...job, sudo: true } }, 400, 'invalid_spec', 'sudo'],
    ['an unknown limit', { body: { ...job, limits: { gpus: 1 } } }, 400, 'invalid_spec', 'limits.gpus'],
    ['an absurd timeout', { body: { ...job, limits: { timeoutMs: 1e12 } } }, 400, 'invalid_spec', 'limits.timeoutMs'],
    ['a negative memory', { body: { ...job, limits: { memoryBytes: -1 } } }, 400, 'invalid_spec', 'limits.memoryBytes'],
    ['a fractional pid limit', { body: { ...job, limits: { pids: 1.5 } } }, 400, 'invalid_spec', 'limits.pids'],
    [
      'too many files',
      { body: { ...job, files: Array.from({ length: 101 }, (_, i) => ({ path: `/f${i}`, content: '' })) } },
      400,
      'invalid_spec',
      'files',
    ],
    [
      'a relative file path',
      { body: { ...job, files: [{ path: 'x', content: '' }] } },
      400,
      'invalid_spec',
      'files.0.path',
    ],
    ['a bad env name', { body: { ...job, env: { 'A=B': '1' } } }, 400, 'invalid_spec', 'env.A=B'],
    ['a priority of 11', { body: { ...job, priority: 11 } }, 400, 'invalid_spec', 'priority'],
    ['a ftp callback', { body: { ...job, callbackUrl: 'ftp://x/y' } }, 400, 'invalid_spec', 'callbackUrl'],
    ['an image name with spaces', { body: { ...job, image: 'rm -rf /' } }, 400, 'invalid_spec', 'image'],
    // The stores' own parser decides (common/image-reference.ts): repository names are lowercase.
    ['an image name in capitals', { body: { ...job, image: 'Python' } }, 400, 'invalid_spec', 'image'],
    ['a bad digest', { body: { ...job, image: 'busybox@sha256:123' } }, 400, 'invalid_spec', 'image'],
    ['wait that is not a number', { body: job, query: '?wait=soon' }, 400, 'invalid_spec', 'wait'],
    ['wait above 60 s', { body: job, query: '?wait=61' }, 400, 'invalid_spec', 'wait'],
  ];
  for (const [what, { raw, body, query = '' }, status, code, path] of bad) {
    it(`refuses ${what}`, async () => {
      const reply = await call(app, 'POST', `/v1/jobs${query}`, { tenant: acme, raw, body });
      expectError(reply, status, code, path);
      if (what === 'malformed JSON') expect(reply.body.error.message).toBe('body is not valid JSON');
    });
  }

  it('refuses an oversized body with 413, with or without Content-Length', async () => {
    const huge = JSON.stringify({ ...job, stdin: 'x'.repeat(17 * 1024 * 1024) });
    expectError(await call(app, 'POST', '/v1/jobs', { tenant: acme, raw: huge }), 413, 'payload_too_large');
    const withLength = { 'Content-Length': String(huge.length) };
    expectError(
      await call(app, 'POST', '/v1/jobs', { tenant: acme, raw: huge, headers: withLength }),
      413,
      'payload_too_large',
    );
  });

  it('refuses an image the workers do not offer, naming the ones they do; registry images pass', async () => {
    await h.redis.sadd(keys.images, 'busybox:latest', 'python:latest');
    try {
      const reply = await submit({ ...job, image: 'ruby' });
      expectError(reply, 400, 'invalid_spec', 'image');
      expect(reply.body.error.message).toMatch(
        /unknown image "ruby:latest"; known images: busybox:latest, python:latest/,
      );
      expect((await submit({ ...job, image: 'python' })).status).toBe(202);
      expect((await submit({ ...job, image: 'python:latest' })).status).toBe(202);
      expect((await submit({ ...job, image: 'registry.example:5000/team/app:1' })).status).toBe(202);
      expect((await call(app, 'GET', '/v1/images', { tenant: acme })).body).toEqual({
        images: ['busybox:latest', 'python:latest'],
      });
    } finally {
      await h.redis.del(keys.images);
    }
  });

  it('answers odd bodies, paths and queries with a 4xx, never a 500', async () => {
    const raws = ['null', '"job"', '42', '{"__proto__": {"admin": true}, "image": "busybox"}', '['.repeat(100_000)];
    raws.push('{"image": "busybox", "limits": {"timeoutMs": 1e400}}', '\u00ff\u00fe{');
    for (const raw of raws) {
      const reply = await call(app, 'POST', '/v1/jobs', { tenant: acme, raw });
      expect(reply.status, raw.slice(0, 40)).toBe(400);
      expect(await call(app, 'POST', '/v1/batches', { tenant: acme, raw })).toMatchObject({ status: 400 });
    }
    for (const [method, path] of [
      ['GET', '/v1/jobs/%ZZ'],
      ['GET', '/v1/jobs/job_%00%00'],
      ['GET', '/v1/batches/bat_AAAAAAAAAAAAAAAAAAAA?limit=abc'],
      ['DELETE', '/v1/batches/x'],
      ['PUT', '/v1/jobs'],
      ['POST', '/v1/jobs?wait=-1'],
    ]) {
      const reply = await call(app, method!, path!, { tenant: acme, body: method === 'GET' ? undefined : job });
      expect(reply.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(reply.status, `${method} ${path}`).toBeLessThan(500);
    }
  });

  it('answers unknown routes with a 404 envelope', async () => {
    expectError(await call(app, 'GET', '/v1/nothing', { tenant: acme }), 404, 'not_found');
    expectError(await call(app, 'GET', '/nothing'), 404, 'not_found');
  });
});
