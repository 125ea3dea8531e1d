// One job's trace across processes: `lid gateway` and `lid worker` run as separate processes on a private Redis,
// exporting to a real OTLP/HTTP receiver on loopback that decodes the JSON it is sent. A client submits a job with
// its own traceparent; the spans both processes export must form one tree under the client's span, and
// GET /v1/jobs/:id/trace must show the same timeline without any backend.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobRecord } from '../common/job.js';
import { connectRedis } from '../common/redis.js';
import type { StoredSpan } from '../common/trace-store.js';
import { TenantStore } from '../gateway/tenants.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { describePrivileged } from './privileged.js';
import { startTestRedis, type TestRedis } from './redis-server.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;

interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpRequest {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: {
      spans: {
        name: string;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        startTimeUnixNano: string;
        endTimeUnixNano: string;
        attributes?: OtlpAttribute[];
      }[];
    }[];
  }[];
}

const valueOf = (v: OtlpValue) => v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue;
const attributesOf = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

/** An OTLP/HTTP receiver: POST /v1/traces with the JSON encoding, decoded into flat spans. */
async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !req.headers['content-type']?.includes('json')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequest;
      for (const rs of body.resourceSpans) {
        const service = String(attributesOf(rs.resource.attributes)['service.name']);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service,
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              startNs: BigInt(s.startTimeUnixNano),
              endNs: BigInt(s.endTimeUnixNano),
              attributes: attributesOf(s.attributes),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Starts `lid <command>` and resolves once its stdout or stderr matches `ready`. */
async function startLid(command: string, env: NodeJS.ProcessEnv, ready: RegExp) {
  const child = spawn(process.execPath, [lidBin, command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const look = (c: Buffer) => {
      output += c;
      const m = output.match(ready);
      if (m) resolve(m);
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    child.once('exit', (code) => reject(new Error(`lid ${command} exited (${code}): ${output}`)));
  });
  return { child, match, output: () => output };
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function until<T>(what: string, get: () => Promise<T> | T, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const WORKER_SPANS = ['queue.wait', 'job.process', 'image.resolve', 'sandbox.setup', 'sandbox.run', 'sandbox.teardown'];
const SETUP_STEPS = ['sandbox.cgroups', 'sandbox.namespaces', 'sandbox.spawn', 'sandbox.mounts', 'sandbox.attach'];
const JOB_SPANS = ['POST /v1/jobs', 'enqueue', ...WORKER_SPANS, ...SETUP_STEPS, 'result.store'];

describePrivileged('tracing across the gateway and worker processes', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-tracing-'));
  let redisServer: TestRedis;
  let redis: Redis;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let gateway: Awaited<ReturnType<typeof startLid>> | undefined;
  let worker: Awaited<ReturnType<typeof startLid>> | undefined;
  let url: string;
  let apiKey: string;

  beforeAll(async () => {
    redisServer = await startTestRedis();
    redis = connectRedis(redisServer.url, 'test');
    receiver = await startReceiver();
    const dataDir = path.join(tmp, 'data');
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: 'mini:1' });
    await importImage(ImageStore.open(dataDir), layout);
    ({ apiKey } = await new TenantStore(redis).create('t'));
    const env = {
      ...process.env,
      REDIS_URL: redisServer.url,
      LID_DATA_DIR: dataDir,
      LID_PORT: '0',
      LID_WORKER_METRICS_PORT: 'off',
      LID_SHUTDOWN_GRACE_MS: '1000',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    worker = await startLid('worker', env, /"msg":"worker started"/);
    gateway = await startLid('gateway', env, /lid gateway: listening on (http:\/\/\S+)/);
    url = gateway.match[1]!;
  }, 120_000);

  afterAll(async () => {
    await stop(gateway?.child);
    await stop(worker?.child);
    await redis?.quit();
    await redisServer?.stop();
    await receiver?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('continues the client trace through the queue and exports one tree from both processes', async () => {
    const traceId = crypto.randomBytes(16).toString('hex');
    const clientSpanId = crypto.randomBytes(8).toString('hex');
    const res = await fetch(`${url}/v1/jobs?wait=30`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${clientSpanId}-01`,
      },
      body: JSON.stringify({ image: 'mini:1', command: ['sh', '-c', 'echo hi'], limits: { memoryBytes: 64 << 20 } }),
    });
    const record = (await res.json()) as JobRecord;
    expect(res.status, JSON.stringify(record)).toBe(200);
    expect(record.result?.stdout).toBe('hi\n');
    expect(record.traceId).toBe(traceId);

    // Exported spans: the worker's arrive within a schedule delay of the job's end.
    const ours = () => receiver.spans.filter((s) => s.traceId === traceId);
    const spans = await until('exported spans', ours, (list) => JOB_SPANS.every((n) => list.some((s) => s.name === n)));
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['lid-gateway', 'lid-worker']));
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of spans) expect(ids.has(s.parentSpanId) || s.parentSpanId === clientSpanId, s.name).toBe(true);
    const byName = (n: string) => spans.find((s) => s.name === n)!;
    expect(byName('POST /v1/jobs').parentSpanId).toBe(clientSpanId);
    expect(byName('POST /v1/jobs').service).toBe('lid-gateway');
    expect(byName('job.process').service).toBe('lid-worker');
    expect(byName('job.process').parentSpanId).toBe(byName('enqueue').spanId);
    expect(byName('queue.wait').parentSpanId).toBe(byName('enqueue').spanId);
    for (const n of ['image.resolve', 'sandbox.setup', 'sandbox.run', 'sandbox.teardown', 'result.store'])
      expect(byName(n).parentSpanId, n).toBe(byName('job.process').spanId);
    const ms = (s: ReceivedSpan) => Number(s.endNs - s.startNs) / 1e6;
    for (const n of ['sandbox.setup', 'sandbox.run', 'sandbox.teardown']) {
      expect(ms(byName(n)), n).toBeGreaterThan(0);
      expect(ms(byName(n)), n).toBeLessThan(10_000);
    }
    expect(ms(byName('queue.wait'))).toBeGreaterThanOrEqual(0);
    // Setup's steps fill it, back to back.
    const steps = SETUP_STEPS.map(byName);
    for (const step of steps) expect(step.parentSpanId, step.name).toBe(byName('sandbox.setup').spanId);
    expect(steps[0]!.startNs).toBe(byName('sandbox.setup').startNs);
    const stepsMs = steps.reduce((sum, step) => sum + ms(step), 0);
    expect(Math.abs(stepsMs - ms(byName('sandbox.setup')))).toBeLessThan(1);
    // The phases sit inside job.process, back to back.
    expect(byName('sandbox.setup').startNs).toBeGreaterThanOrEqual(byName('job.process').startNs);
    expect(byName('sandbox.teardown').endNs).toBeLessThanOrEqual(byName('job.process').endNs);
    expect(byName('job.process').attributes).toMatchObject({
      'lid.job.id': record.id,
      'lid.tenant': 't',
      'lid.image': 'mini:1',
      'lid.limits.memory_bytes': 64 << 20,
      'lid.status': 'ok',
    });
    expect(byName('sandbox.run').attributes['lid.usage.memory_peak_bytes']).toEqual(expect.any(Number));
  });

  it('serves the job timeline at GET /v1/jobs/:id/trace, to its tenant only', async () => {
    const traceId = crypto.randomBytes(16).toString('hex');
    const clientSpanId = crypto.randomBytes(8).toString('hex');
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const res = await fetch(`${url}/v1/jobs?wait=30`, {
      method: 'POST',
      headers: { ...headers, traceparent: `00-${traceId}-${clientSpanId}-01` },
      body: JSON.stringify({ image: 'mini:1', command: ['true'] }),
    });
    const { id } = (await res.json()) as JobRecord;
    const body = await until(
      'the stored trace',
      async () =>
        (await (await fetch(`${url}/v1/jobs/${id}/trace`, { headers })).json()) as {
          traceId: string;
          spans: StoredSpan[];
        },
      (b) => JOB_SPANS.every((n) => b.spans.some((s) => s.name === n)),
    );
    expect(body.traceId).toBe(traceId);
    const ids = new Set(body.spans.map((s) => s.spanId));
    for (const s of body.spans) {
      expect(ids.has(s.parentSpanId!) || s.parentSpanId === clientSpanId, s.name).toBe(true);
      expect(s.durationMs).toBeGreaterThanOrEqual(0);
      expect(s.attributes['lid.job.id']).toBe(id);
    }
    const starts = body.spans.map((s) => s.startMs);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));

    const other = await new TenantStore(redis).create('other');
    const foreign = await fetch(`${url}/v1/jobs/${id}/trace`, { headers: { authorization: `Bearer ${other.apiKey}` } });
    expect(foreign.status).toBe(404);
  });

  it('logs structured JSON lines that carry jobId, tenant and traceId for every line about a job', async () => {
    const res = await fetch(`${url}/v1/jobs?wait=30`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image: 'mini:1', command: ['true'] }),
    });
    const record = (await res.json()) as JobRecord;
    const about = (out: string) =>
      out
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry.jobId === record.id);
    const fromWorker = await until(
      'worker log lines',
      () => about(worker!.output()),
      (l) => l.length >= 2,
    );
    const fromGateway = await until(
      'gateway log lines',
      () => about(gateway!.output()),
      (l) => l.length >= 1,
    );
    for (const entry of [...fromWorker, ...fromGateway]) {
      expect(entry).toMatchObject({ jobId: record.id, tenant: 't', traceId: record.traceId });
      expect(typeof entry.level).toBe('number');
      expect(typeof entry.msg).toBe('string');
    }
  });
});
