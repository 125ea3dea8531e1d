// The server key callback signing secrets derive from: made on first use under LID_DATA_DIR with private modes
// whatever the umask, kept across calls, and refused with a message naming the file (and LID_SIGNING_KEY_FILE when
// that names it) when it is missing, readable by others or the wrong size. Secrets differ per tenant and version.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { callbackSecret, loadSigningKey, signingKeyPath } from './callback-secret.js';
import { loadConfig } from './config.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-signing-key-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('makes the default key once, 0600 in a 0700 secrets directory under a 0711 data directory, whatever the umask', () => {
  const config = loadConfig({ LID_DATA_DIR: path.join(tmp, 'data') });
  const old = process.umask(0o000);
  let key: Buffer;
  try {
    key = loadSigningKey(config);
  } finally {
    process.umask(old);
  }
  const file = signingKeyPath(config);
  expect(file).toBe(path.join(tmp, 'data', 'secrets', 'signing-key'));
  expect(key.length).toBe(32);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  expect(fs.statSync(path.join(tmp, 'data')).mode & 0o777).toBe(0o711);
  expect(loadSigningKey(config).equals(key)).toBe(true); // kept, not remade
  expect(fs.readdirSync(path.dirname(file))).toEqual(['signing-key']); // no temporary file left behind
});

it('uses LID_SIGNING_KEY_FILE as given, and refuses it missing, readable by others or of the wrong size', () => {
  const file = path.join(tmp, 'shared-key');
  const config = loadConfig({ LID_DATA_DIR: path.join(tmp, 'unused'), LID_SIGNING_KEY_FILE: file });
  expect(() => loadSigningKey(config)).toThrow(/^LID_SIGNING_KEY_FILE .*shared-key does not exist: make it once with/);
  expect(fs.existsSync(path.join(tmp, 'unused'))).toBe(false); // nothing made in its stead
  fs.writeFileSync(file, Buffer.alloc(32, 7), { mode: 0o644 });
  fs.chmodSync(file, 0o644);
  expect(() => loadSigningKey(config)).toThrow(/can be read by other users \(mode 644\): chmod 600 it/);
  fs.chmodSync(file, 0o600);
  expect(loadSigningKey(config).equals(Buffer.alloc(32, 7))).toBe(true);
  fs.writeFileSync(file, 'short');
  expect(() => loadSigningKey(config)).toThrow(/holds 5 bytes: it needs 32 to 4096/);
  expect(() => loadConfig({ LID_SIGNING_KEY_FILE: 'relative/key' })).toThrow(/^LID_SIGNING_KEY_FILE="relative\/key"/);
});

it('derives a different secret for each tenant, version and nonce, and only from the server key', () => {
  const key = Buffer.alloc(32, 1);
  const base = callbackSecret(key, 'acme', 1, 'n');
  expect(base).toMatch(/^[0-9a-f]{64}$/);
  expect(callbackSecret(key, 'acme', 1, 'n')).toBe(base);
  const others = [
    callbackSecret(key, 'acme2', 1, 'n'),
    callbackSecret(key, 'acme', 2, 'n'),
    callbackSecret(key, 'acme', 1, 'm'),
    callbackSecret(Buffer.alloc(32, 2), 'acme', 1, 'n'),
  ];
  expect(new Set([base, ...others]).size).toBe(5);
});
