// `lid tenants ...` through tenantsCommand (main.ts registers it), against a real Redis given as REDIS_URL: JSON on
// stdout, sizes and durations parsed, errors on stderr with exit code 1, and the connection closed each time.
import type { Command } from 'commander';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { type LidConfig, loadConfig } from '../common/config.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { tenantsCommand } from './tenants.js';

let server: TestRedis;
let config: LidConfig;
beforeAll(async () => {
  server = await startTestRedis();
  config = loadConfig({ REDIS_URL: server.url, LOG_LEVEL: 'silent' });
});
afterAll(() => server?.stop());
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `lid tenants ARGS...` and returns what it printed. */
async function lidTenants(...args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const command: Command = tenantsCommand(config);
    for (const sub of command.commands) sub.exitOverride();
    await command.parseAsync(args, { from: 'user' });
    return { out: out.mock.calls.join(''), err: err.mock.calls.join(''), code: process.exitCode as number | undefined };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

it('creates a tenant with its settings and prints the tenant and its key', async () => {
  const { out, code } = await lidTenants(
    'create',
    'acme',
    '--concurrency',
    '8',
    '--rate',
    '2.5',
    '--max-queued',
    '500',
    '--max-timeout',
    '30s',
    '--max-memory',
    '512m',
  );
  expect(code).toBeUndefined();
  const printed = JSON.parse(out);
  expect(printed).toEqual({
    tenant: {
      name: 'acme',
      concurrency: 8,
      ratePerSec: 2.5,
      maxQueued: 500,
      maxTimeoutMs: 30_000,
      maxMemoryBytes: 512 * 1024 * 1024,
      createdAt: expect.any(String),
      revokedAt: null,
    },
    apiKey: expect.stringMatching(/^lid_/),
  });
});

it('lists, updates and revokes', async () => {
  await lidTenants('create', 'beta');
  expect(JSON.parse((await lidTenants('list')).out).map((t: { name: string }) => t.name)).toEqual(['acme', 'beta']);
  const updated = JSON.parse((await lidTenants('update', 'beta', '--max-timeout', '2m')).out);
  expect(updated).toMatchObject({ name: 'beta', maxTimeoutMs: 120_000, concurrency: 4 });
  const revoked = JSON.parse((await lidTenants('revoke', 'beta')).out);
  expect(revoked).toMatchObject({ name: 'beta', revokedAt: expect.any(String) });
  expect(JSON.stringify(JSON.parse((await lidTenants('list')).out))).not.toContain('apiKey');
});

it('says what is wrong on stderr and exits 1', async () => {
  expect(await lidTenants('create', 'acme')).toMatchObject({
    out: '',
    err: expect.stringMatching(/already exists/),
    code: 1,
  });
  expect(await lidTenants('update', 'nobody', '--rate', '1')).toMatchObject({
    err: expect.stringMatching(/no tenant "nobody"/),
    code: 1,
  });
  expect(await lidTenants('create', 'Not_Valid')).toMatchObject({ err: expect.stringMatching(/lowercase/), code: 1 });
  await expect(lidTenants('create', 'x', '--max-memory', 'lots')).rejects.toMatchObject({
    code: 'commander.invalidArgument',
  });
});
