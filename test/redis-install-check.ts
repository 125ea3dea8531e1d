// Run by test/redis-install-in-vm.sh inside the v2 VM, after redis-server has been uninstalled there: the embedded
// Redis must say it is installing redis-server, install it with apt-get, and start it, as the package's `redis`
// user and behind its password.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ensureEmbeddedRedis, stopEmbeddedRedis } from '../cli/local/embedded-redis.js';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-install-'));
const notices: string[] = [];
const redis = await ensureEmbeddedRedis(dataDir, { onNotice: (m) => notices.push(m) });
assert.ok(
  notices.some((n) => /redis-server not found: installing Debian's redis-server with apt-get/.test(n)),
  `notices: ${notices.join(' | ')}`,
);
assert.equal(redis.started, true);
const uid = /^Uid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${redis.pid}/status`, 'utf8'))?.[1];
assert.equal(uid, execFileSync('id', ['-u', 'redis'], { encoding: 'utf8' }).trim(), 'runs as the redis user');
const client = new Redis(redis.url);
assert.equal(await client.ping(), 'PONG');
client.disconnect();
const stranger = new Redis(redis.url.replace(/\/\/[^@]*@/, '//'), { maxRetriesPerRequest: 0 });
stranger.on('error', () => {});
await assert.rejects(stranger.ping(), /NOAUTH/);
stranger.disconnect();
await stopEmbeddedRedis(dataDir);
fs.rmSync(dataDir, { recursive: true, force: true });
process.stdout.write('redis install check: 1 passed, 0 failed\n');
