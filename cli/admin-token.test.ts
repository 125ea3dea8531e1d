// The all-in-one's dashboard token: LID_ADMIN_TOKEN wins; otherwise one is made, kept 0600 and reused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { adminToken } from './admin-token.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-admin-token-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('makes a token once, keeps it private under LID_DATA_DIR, and reuses it', () => {
  const config = loadConfig({ LID_DATA_DIR: path.join(tmp, 'data') });
  const token = adminToken(config);
  expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
  const file = path.join(tmp, 'data', 'admin-token');
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(adminToken(config)).toBe(token);
});

it('uses LID_ADMIN_TOKEN when it is set, writing nothing', () => {
  const dir = path.join(tmp, 'set');
  const config = loadConfig({ LID_DATA_DIR: dir, LID_ADMIN_TOKEN: 'an-operator-chosen-token' });
  expect(adminToken(config)).toBe('an-operator-chosen-token');
  expect(fs.existsSync(dir)).toBe(false);
});
