// `lid tenants ...` through tenantsCommand (main.ts registers it), against a real Redis given as REDIS_URL: JSON on
// stdout, sizes and durations parsed, errors on stderr with exit code 1, and the connection closed each time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { callbackSecret, loadSigningKey } from '../common/callback-secret.js';
import { type LidConfig, loadConfig } from '../common/config.js';
import { keys } from '../common/keys.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { tenantsCommand } from './tenants.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-cli-tenants-'));
let server: TestRedis;
let config: LidConfig;
beforeAll(async () => {
  server = await startTestRedis();
  config = loadConfig({ REDIS_URL: server.url, LOG_LEVEL: 'silent', LID_DATA_DIR: dataDir });
});
afterAll(async () => {
  await server?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `lid tenants ARGS...` and returns what it printed. */
async function lidTenants(...args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  return lidTenantsWith(config, ...args);
}

async function lidTenantsWith(
  config: LidConfig,
  ...args: string[]
): Promise<{ out: string; err: string; code: number | undefined }> {
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
    '--max-cpus',
    '1.5',
    '--max-pids',
    '64',
    '--max-output',
    '2m',
    '--max-disk',
    '256m',
    '--network',
    'allowlist',
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
      maxCpus: 1.5,
      maxPids: 64,
      maxOutputBytes: 2 * 1024 * 1024,
      maxDiskBytes: 256 * 1024 * 1024,
      network: 'allowlist',
      createdAt: expect.any(String),
      revokedAt: null,
      signingVersion: 1,
    },
    apiKey: expect.stringMatching(/^lid_/),
    signingSecret: expect.stringMatching(/^[0-9a-f]{64}$/),
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

it('stores the network ceiling: none unless given, changed by update, a bad level refused naming the flag', async () => {
  const stored = async (name: string) => {
    const redis = new Redis(server.url);
    try {
      return JSON.parse((await redis.get(keys.tenant(name)))!).network;
    } finally {
      redis.disconnect();
    }
  };
  expect(JSON.parse((await lidTenants('create', 'quiet')).out).tenant.network).toBe('none');
  expect(await stored('quiet')).toBe('none');
  expect(JSON.parse((await lidTenants('update', 'quiet', '--network', 'internet')).out)).toMatchObject({
    name: 'quiet',
    network: 'internet',
    concurrency: 4, // the rest unchanged
  });
  expect(await stored('quiet')).toBe('internet');
  expect(JSON.parse((await lidTenants('update', 'quiet', '--rate', '3')).out).network).toBe('internet');
  await expect(lidTenants('create', 'wide', '--network', 'everything')).rejects.toMatchObject({
    code: 'commander.invalidArgument',
    message: expect.stringContaining(
      "option '--network <level>' argument 'everything' is invalid. the network ceiling must be none, allowlist, internet",
    ),
  });
  expect((await lidTenants('list')).out).not.toContain('"wide"');
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

it('refuses a ceiling above this server’s cap, naming the flag and the variable; at the cap it is taken', async () => {
  const capped = loadConfig({
    REDIS_URL: server.url,
    LID_DATA_DIR: dataDir,
    LID_CAP_PIDS: '100',
    LID_CAP_OUTPUT: '4m',
  });
  expect(await lidTenantsWith(capped, 'create', 'greedy', '--max-pids', '101')).toMatchObject({
    out: '',
    err: "lid tenants create: --max-pids 101 is above this server's cap of 100 (LID_CAP_PIDS): ask for less, or raise the cap and restart Lid first\n",
    code: 1,
  });
  process.exitCode = undefined;
  expect((await lidTenantsWith(capped, 'list')).out).not.toContain('greedy');
  const created = await lidTenantsWith(capped, 'create', 'modest', '--max-pids', '100', '--max-output', '4m');
  expect(created.code).toBeUndefined();
  expect(JSON.parse(created.out).tenant).toMatchObject({ maxPids: 100, maxOutputBytes: 4 * 1024 * 1024 });
  expect(await lidTenantsWith(capped, 'update', 'modest', '--max-output', '5m')).toMatchObject({
    err: expect.stringContaining("--max-output 5m is above this server's cap of 4m (LID_CAP_OUTPUT)"),
    code: 1,
  });
});

it('prints a signing secret at create and a new one at each rotation, derived from the server key', async () => {
  const { signingSecret: first } = JSON.parse((await lidTenants('create', 'signer')).out);
  const key = loadSigningKey(config);
  const redis = new Redis(server.url);
  const stored = JSON.parse((await redis.get(keys.tenant('signer')))!);
  redis.disconnect();
  expect(first).toBe(callbackSecret(key, 'signer', 1, stored.signingNonce));
  const rotated = JSON.parse((await lidTenants('rotate-signing-secret', 'signer')).out);
  expect(rotated).toEqual({
    tenant: expect.objectContaining({ name: 'signer', signingVersion: 2 }),
    signingSecret: expect.stringMatching(/^[0-9a-f]{64}$/),
  });
  expect(rotated.signingSecret).not.toBe(first);
  expect(await lidTenants('rotate-signing-secret', 'nobody')).toMatchObject({
    err: expect.stringMatching(/no tenant "nobody"/),
    code: 1,
  });
});
