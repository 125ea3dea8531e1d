// TenantStore against a real Redis: keys are shown once and stored only hashed, names and settings are checked,
// updates are partial, and a revoked key stops working at once.
import crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keys } from '../common/keys.js';
import { connectRedis } from '../common/redis.js';
import { TENANT_DEFAULTS } from '../common/tenant-record.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { TenantStore } from './tenants.js';

let server: TestRedis;
let redis: Redis;
let store: TenantStore;
beforeAll(async () => {
  server = await startTestRedis();
  redis = connectRedis(server.url, 'test');
  store = new TenantStore(redis);
});
afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

it('creates a tenant with the defaults and a key that is stored only as its SHA-256', async () => {
  const { tenant, apiKey } = await store.create('acme');
  expect(apiKey).toMatch(/^lid_[A-Za-z0-9_-]{43}$/);
  expect(tenant).toEqual({
    name: 'acme',
    ...TENANT_DEFAULTS,
    createdAt: expect.any(String),
    revokedAt: null,
    signingVersion: 1,
  });
  const hash = crypto.createHash('sha256').update(apiKey).digest('hex');
  expect(await redis.get(keys.apiKey(hash))).toBe('acme');
  for (const key of await redis.keys('*')) {
    expect(key).not.toContain(apiKey);
    const type = await redis.type(key);
    const value = type === 'string' ? await redis.get(key) : (await redis.smembers(key)).join(' ');
    expect(value).not.toContain(apiKey);
  }
  expect(await store.authenticate(apiKey)).toEqual(tenant);
  expect(await store.authenticate(`lid_${'x'.repeat(43)}`)).toBeNull();
  expect(await store.authenticate('acme')).toBeNull();
});

it('refuses bad names, taken names and bad settings with an error that says why', async () => {
  await expect(store.create('Bad_Name')).rejects.toMatchObject({
    code: 'invalid_spec',
    message: expect.stringMatching(/lowercase/),
  });
  await expect(store.create('x'.repeat(64))).rejects.toMatchObject({ code: 'invalid_spec' });
  await store.create('taken');
  await expect(store.create('taken')).rejects.toMatchObject({
    code: 'invalid_spec',
    message: expect.stringMatching(/already exists/),
  });
  await expect(store.create('neg', { concurrency: 0 })).rejects.toMatchObject({
    message: expect.stringMatching(/concurrency/),
  });
  await expect(store.create('huge', { maxQueued: 10_000_000 })).rejects.toMatchObject({
    message: expect.stringMatching(/maxQueued/),
  });
  expect(await store.get('neg')).toBeNull();
});

it('lists tenants by name and updates only the settings given', async () => {
  await store.create('zeta', { ratePerSec: 5 });
  await store.create('beta', { concurrency: 2 });
  const names = (await store.list()).map((t) => t.name);
  expect(names).toEqual([...names].sort());
  expect(names).toEqual(expect.arrayContaining(['beta', 'zeta']));
  const updated = await store.update('zeta', { maxTimeoutMs: 30_000, concurrency: undefined });
  expect(updated).toMatchObject({ ratePerSec: 5, maxTimeoutMs: 30_000, concurrency: TENANT_DEFAULTS.concurrency });
  expect(await store.get('zeta')).toEqual(updated);
  await expect(store.update('zeta', { ratePerSec: -1 })).rejects.toMatchObject({ code: 'invalid_spec' });
  await expect(store.update('nobody', { ratePerSec: 1 })).rejects.toMatchObject({ code: 'not_found' });
});

it('revokes a key: it stops working at once, the tenant and its settings stay', async () => {
  const { apiKey } = await store.create('leaving');
  expect(await store.authenticate(apiKey)).not.toBeNull();
  const revoked = await store.revoke('leaving');
  expect(revoked.revokedAt).toEqual(expect.any(String));
  expect(await store.authenticate(apiKey)).toBeNull();
  expect((await store.get('leaving'))?.revokedAt).toBe(revoked.revokedAt);
  expect((await store.revoke('leaving')).revokedAt).toBe(revoked.revokedAt); // idempotent
});

it('reads a record written before the newer ceilings and signing secrets existed with today’s defaults', async () => {
  const old = { name: 'elder', concurrency: 2, ratePerSec: 9, maxQueued: 10, maxTimeoutMs: 5000 };
  await redis.set(keys.tenant('elder'), JSON.stringify({ ...old, createdAt: 'then', revokedAt: null, keyHash: 'h' }));
  expect(await store.get('elder')).toEqual({
    ...TENANT_DEFAULTS,
    ...old,
    createdAt: 'then',
    revokedAt: null,
    signingVersion: 0,
  });
  expect(await store.update('elder', { maxPids: 32 })).toMatchObject({ maxPids: 32, maxCpus: TENANT_DEFAULTS.maxCpus });
});

it('refuses a tenant whose stored record is malformed, naming its key and field, and lets nobody in with it', async () => {
  const { apiKey } = await store.create('broken');
  const stored = JSON.parse((await redis.get(keys.tenant('broken')))!);
  await redis.set(keys.tenant('broken'), JSON.stringify({ ...stored, concurrency: 'many' }));
  const why = {
    code: 'internal',
    message: expect.stringMatching(/^invalid tenant record lid:tenant:broken: concurrency: /),
  };
  await expect(store.get('broken')).rejects.toMatchObject(why);
  await expect(store.authenticate(apiKey)).rejects.toMatchObject(why);
  await expect(store.update('broken', { concurrency: 2 })).rejects.toMatchObject(why);
});
