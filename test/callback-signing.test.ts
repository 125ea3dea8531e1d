// Callback signatures, end to end: `lid tenants create` (the real CLI) prints a signing secret, a worker delivers a
// job's callback to a receiver on loopback, and the receiver verifies Lid-Signature with that secret as the README
// says to. The attack: someone who can read Redis dumps every key and tries every stored string (and every string
// inside stored JSON) as the HMAC key; none may produce the signature (under the old scheme the tenant's stored
// keyHash did, and the dump is checked to hold it, so the attack is not vacuous), while the real secret does. After
// `lid tenants rotate-signing-secret` the old secret no longer verifies and the new one does.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadSigningKey } from '../common/callback-secret.js';
import { loadConfig } from '../common/config.js';
import { keys } from '../common/keys.js';
import { LidQueueClient } from '../common/queue-client.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { LidWorker } from '../worker/worker.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { describePrivileged } from './privileged.js';
import { startTestRedis, type TestRedis } from './redis-server.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-callback-signing-'));
const dataDir = path.join(tmp, 'data');
const IMAGE = 'busybox-callbacks:1';

/** What a receiver does with a delivery: true when Lid-Signature is a fresh HMAC of "<t>.<body>" under `secret`. */
function verifies(secret: string | Buffer, header: string, body: string, now = Date.now() / 1000): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const [, t, mac] = match;
  if (Math.abs(now - Number(t)) > 300) return false; // refuse replays of old deliveries
  const expected = crypto.createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return crypto.timingSafeEqual(expected, Buffer.from(mac!, 'hex'));
}

/** Every string Redis holds: key names, values of every type, and every string or number inside JSON values. */
async function dumpRedis(redis: Redis): Promise<Set<string>> {
  const found = new Set<string>();
  const add = (value: string) => {
    found.add(value);
    try {
      collectJson(JSON.parse(value), found);
    } catch {
      // not JSON: the string itself is all there is
    }
  };
  for (const key of await redis.keys('*')) {
    add(key);
    const type = await redis.type(key);
    const values =
      type === 'string'
        ? [(await redis.get(key))!]
        : type === 'hash'
          ? Object.entries(await redis.hgetall(key)).flat()
          : type === 'list'
            ? await redis.lrange(key, 0, -1)
            : type === 'set'
              ? await redis.smembers(key)
              : type === 'zset'
                ? await redis.zrange(key, 0, -1, 'WITHSCORES')
                : type === 'stream'
                  ? (await redis.xrange(key, '-', '+')).flatMap(([id, fields]) => [id, ...fields])
                  : [];
    for (const v of values) add(v);
  }
  return found;
}

function collectJson(value: unknown, found: Set<string>): void {
  if (typeof value === 'string' || typeof value === 'number') found.add(String(value));
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collectJson(v, found);
}

describePrivileged('callback signatures', () => {
  let redis: TestRedis;
  let r: Redis;
  let client: LidQueueClient;
  let worker: LidWorker;
  let receiver: http.Server;
  let url: string;
  const deliveries: { signature: string; body: string }[] = [];
  const config = loadConfig({
    LID_DATA_DIR: dataDir,
    LID_WORKER_CONCURRENCY: '2',
    LID_WORKER_METRICS_PORT: 'off',
    LID_ALLOW_PRIVATE_EGRESS: '127.0.0.0/8', // the receiver runs on loopback: callbacks may go there only when allowed
  });

  /** `lid tenants ARGS` as an operator runs it, against the test's Redis and data directory. */
  const lidTenants = (...args: string[]) => {
    const res = spawnSync(process.execPath, [lidBin, 'tenants', ...args], {
      encoding: 'utf8',
      env: { ...process.env, REDIS_URL: redis.url, LID_DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    expect(res.status, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as { signingSecret: string; tenant: { name: string } };
  };

  /** Runs a job with a callback and returns its delivery. */
  const deliver = async (tenant: string) => {
    const before = deliveries.length;
    const { id } = await client.submit(tenant, { image: IMAGE, command: ['echo', 'signed'], callbackUrl: url });
    await client.wait(id, 20_000);
    for (let i = 0; i < 200 && deliveries.length === before; i++) await new Promise((res) => setTimeout(res, 25));
    expect(deliveries.length).toBe(before + 1);
    return deliveries.at(-1)!;
  };

  beforeAll(async () => {
    redis = await startTestRedis();
    r = new Redis(redis.url);
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), layout);
    client = new LidQueueClient(redis.url);
    worker = await LidWorker.start(config, { redisUrl: redis.url, logger: pino({ level: 'silent' }) });
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        deliveries.push({ signature: String(req.headers['lid-signature']), body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    receiver?.close();
    await worker?.close();
    await client?.close();
    r?.disconnect();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it(
    'verifies with the secret `lid tenants create` printed, and with nothing Redis holds',
    { timeout: 60_000 },
    async () => {
      const { signingSecret } = lidTenants('create', 'hooks');
      const { signature, body } = await deliver('hooks');
      expect(JSON.parse(body)).toMatchObject({
        tenant: 'hooks',
        state: 'completed',
        attempts: 1,
        result: { stdout: 'signed\n' },
      });
      expect(verifies(signingSecret, signature, body)).toBe(true);
      expect(verifies(signingSecret, signature, `${body} `)).toBe(false); // a changed body does not verify

      // The attacker's view: every string in Redis, each tried as the key (as text, and as bytes when it is hex).
      const dump = await dumpRedis(r);
      const stored = JSON.parse((await r.get(keys.tenant('hooks')))!) as { keyHash: string };
      expect(dump.has(stored.keyHash)).toBe(true); // the old scheme's key is in reach: the attack would have worked
      const tried = [...dump].flatMap((s) => (/^([0-9a-f]{2})+$/i.test(s) ? [s, Buffer.from(s, 'hex')] : [s]));
      expect(tried.filter((key) => verifies(key, signature, body))).toEqual([]);
      for (const s of dump) expect(s).not.toContain(signingSecret);
      // Nor is the server key the secrets derive from anywhere in Redis, in any usual spelling.
      const serverKey = loadSigningKey(config);
      for (const spelling of [serverKey.toString('hex'), serverKey.toString('base64'), serverKey.toString('base64url')])
        for (const s of dump) expect(s).not.toContain(spelling);
      console.log(
        `tried ${tried.length} strings from ${await r.dbsize()} Redis keys as the signing key: none verified`,
      );

      const keyFile = path.join(dataDir, 'secrets', 'signing-key');
      expect(fs.statSync(path.dirname(keyFile)).mode & 0o777).toBe(0o700);
      expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    },
  );

  it('stops verifying with the old secret once rotated; the new one verifies', { timeout: 60_000 }, async () => {
    const { signingSecret: first } = lidTenants('create', 'rotating');
    const before = await deliver('rotating');
    expect(verifies(first, before.signature, before.body)).toBe(true);
    const { signingSecret: second, tenant } = lidTenants('rotate-signing-secret', 'rotating');
    expect(tenant).toMatchObject({ name: 'rotating', signingVersion: 2 });
    expect(second).not.toBe(first);
    const after = await deliver('rotating');
    expect(verifies(second, after.signature, after.body)).toBe(true);
    expect(verifies(first, after.signature, after.body)).toBe(false);
    // Another tenant's secret never verifies this tenant's callbacks.
    const other = lidTenants('create', 'bystander').signingSecret;
    expect(verifies(other, after.signature, after.body)).toBe(false);
  });
});
