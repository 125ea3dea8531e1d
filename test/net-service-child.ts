// The whole service inside a test network namespace (run there with nsenter by runtime/net/sandbox-network.test.ts):
// a private Redis, `lid worker` and `lid gateway` as separate processes, and a tenant allowed an allowlist. It
// submits the README's kind of call over real HTTP, once with an allowlist and once with network "none", reads the
// first job's trace, prints the three as one JSON line, and stops everything.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectRedis } from '../common/redis.js';
import { TenantStore } from '../gateway/tenants.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { startTestRedis } from './redis-server.js';

const [script, dnsUpstream, allowPrivate, allow] = process.argv.slice(2) as [string, string, string, string];
// This script runs from test/ (tsx) or from dist/test/ (the build, test/node-script.ts): bin/ is at the top of both.
const here = path.dirname(fileURLToPath(import.meta.url));
const lidBin = path.join(here, here.endsWith(`${path.sep}dist${path.sep}test`) ? '../..' : '..', 'bin', 'lid.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-net-service-'));
const children: ChildProcess[] = [];

function startLid(command: string, env: NodeJS.ProcessEnv, ready: RegExp): Promise<RegExpMatchArray> {
  const child = spawn(process.execPath, [lidBin, command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const look = (c: Buffer) => {
      output += c;
      const m = output.match(ready);
      if (m) resolve(m);
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    child.once('exit', (code) => reject(new Error(`lid ${command} exited (${code}): ${output}`)));
  });
}

const redisServer = await startTestRedis();
try {
  const redis = connectRedis(redisServer.url, 'test');
  const dataDir = path.join(tmp, 'data');
  const layout = path.join(tmp, 'layout');
  await writeOciLayout(layout, { layers: [busyboxLayer()], refName: 'mini:1' });
  await importImage(ImageStore.open(dataDir), layout);
  const { apiKey } = await new TenantStore(redis).create('t', { network: 'allowlist' });
  await redis.quit();
  const env = {
    ...process.env,
    REDIS_URL: redisServer.url,
    LID_DATA_DIR: dataDir,
    LID_PORT: '0',
    LID_WORKER_METRICS_PORT: 'off',
    LID_SHUTDOWN_GRACE_MS: '1000',
    LOG_LEVEL: 'info',
    LID_DNS_UPSTREAM: dnsUpstream,
    LID_ALLOW_PRIVATE_EGRESS: allowPrivate,
  };
  await startLid('worker', env, /"msg":"worker started"/);
  const url = (await startLid('gateway', env, /lid gateway: listening on (http:\/\/\S+)/))[1]!;
  const submit = async (network: unknown) => {
    const res = await fetch(`${url}/v1/jobs?wait=30`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image: 'mini:1', command: ['sh', '-c', script], network }),
    });
    return { status: res.status, record: (await res.json()) as { id: string } };
  };
  const allowed = await submit({ allow: [allow] });
  const none = await submit('none');
  const overCeiling = await submit('internet');
  // The worker's spans are stored as the job ends: read until the sandbox's have arrived.
  let trace: { spans: { name: string }[] } = { spans: [] };
  for (let tries = 0; tries < 50 && !trace.spans.some((s) => s.name === 'sandbox.network'); tries++) {
    if (tries) await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${url}/v1/jobs/${allowed.record.id}/trace`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    trace = (await res.json()) as typeof trace;
  }
  process.stdout.write(`${JSON.stringify({ allowed, none, overCeiling, trace })}\n`);
} finally {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  await redisServer.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
