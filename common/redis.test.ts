// Redis URLs with credentials, against a real (locked-down) Redis: a connection made from one, and its duplicates
// (which BullMQ makes for its blocking reads), authenticate; the same URL without them is refused (the control).
// The password never shows: not in a masked URL, not in a configuration error.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { ConfigError, loadConfig } from './config.js';
import { connectRedis, isRedisFull, maskRedisUrl } from './redis.js';

let server: TestRedis;
beforeAll(async () => {
  server = await startTestRedis();
});
afterAll(() => server?.stop());

it('authenticates with the credentials in the URL, on duplicates too; without them Redis refuses', async () => {
  const redis = connectRedis(server.url, 'test');
  const copy = redis.duplicate();
  try {
    expect(await redis.call('ACL', 'WHOAMI')).toBe('lid');
    expect(await copy.call('ACL', 'WHOAMI')).toBe('lid');
  } finally {
    redis.disconnect();
    copy.disconnect();
  }
  const bare = connectRedis(`redis://127.0.0.1:${server.port}`, 'test');
  bare.on('error', () => {});
  try {
    await expect(bare.ping()).rejects.toThrow(/NOAUTH/);
  } finally {
    bare.disconnect();
  }
});

it('masks the password of a URL it shows, and a configuration error never echoes one', () => {
  expect(maskRedisUrl('redis://lid:s3cret-pw@127.0.0.1:6379/2')).toBe('redis://lid:***@127.0.0.1:6379/2');
  expect(maskRedisUrl('rediss://:s3cret-pw@redis.example:6380')).toBe('rediss://:***@redis.example:6380');
  expect(maskRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  expect(maskRedisUrl(server.url)).not.toContain(server.password);
  const error = (() => {
    try {
      loadConfig({ REDIS_URL: 'redis//lid:s3cret-pw@host' });
    } catch (e) {
      return e;
    }
  })();
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as Error).message).toMatch(/^REDIS_URL=<hidden, \d+ characters> is invalid/);
  expect((error as Error).message).not.toContain('s3cret');
});

it("recognises Redis's answer when it is full, and nothing else", () => {
  expect(isRedisFull(new Error("OOM command not allowed when used memory > 'maxmemory'."))).toBe(true);
  expect(isRedisFull(new Error('could not queue: OOM command not allowed when used memory'))).toBe(true);
  expect(isRedisFull(new Error('NOAUTH Authentication required.'))).toBe(false);
  expect(isRedisFull('OOM command not allowed')).toBe(false);
});
