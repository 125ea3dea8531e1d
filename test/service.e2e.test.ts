// The whole service the way a user starts it: `lid up` (what `npm start` runs) on a private data directory and
// port, then real HTTP, `lid run`, `lid tenants`, fairness under a backlog, a gateway restart, and a clean stop.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { JobRecord } from '../common/job.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { describePrivileged } from './privileged.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-e2e-'));
const dataDir = path.join(tmp, 'data');
// The batch callback's receiver is on loopback, where Lid sends tenants' requests only when the operator allows it.
const env = {
  ...process.env,
  LID_DATA_DIR: dataDir,
  LID_PORT: '0',
  LOG_LEVEL: 'warn',
  LID_SHUTDOWN_GRACE_MS: '1000',
  LID_ALLOW_PRIVATE_EGRESS: '127.0.0.0/8',
};

function lid(args: string[], extraEnv: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [lidBin, ...args], {
    encoding: 'utf8',
    env: { ...env, ...extraEnv },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts a `lid` process and resolves once a line of its stdout matches. */
async function startLid(
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; out: () => string; err: () => string }> {
  const child = spawn(process.execPath, [lidBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c));
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = out.match(ready);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`lid ${args.join(' ')} exited (${code}): ${err}`)));
  });
  return { child, match, out: () => out, err: () => err };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

describePrivileged('the service, all in one (lid up)', () => {
  let up: Awaited<ReturnType<typeof startLid>>;
  let url: string;
  let apiKey: string;
  const api = (p: string, init: RequestInit = {}, key = apiKey) =>
    fetch(`${url}${p}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
    });

  beforeAll(async () => {
    // The default images come from recipes (apt); a pre-imported busybox image keeps this test's own jobs quick.
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: 'mini:1' });
    expect(lid(['images', 'import', layout]).code).toBe(0);
    up = await startLid(
      ['up'],
      /API key \(tenant "dev"\): (lid_\S+)\n[\s\S]*API reference: (http:\/\/127\.0\.0\.1:\d+)\/docs\n/,
    );
    apiKey = up.match[1]!;
    url = up.match[2]!;
  }, 600_000);
  afterAll(async () => {
    if (up?.child.exitCode === null) await stop(up.child);
    lid(['images', 'gc']);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('starts Redis, builds the default images, and prints a working key and curl example', async () => {
    expect(up.err()).toMatch(/started the embedded Redis/);
    expect(up.out()).toMatch(/curl -s -H 'Authorization: Bearer lid_/);
    expect(JSON.parse(lid(['images', 'ls', '--json']).out).map((i: { name: string }) => i.name)).toEqual(
      expect.arrayContaining(['busybox:latest', 'python:latest', 'node:latest', 'bash:latest']),
    );
    const res = await api('/v1/jobs?wait=30', {
      method: 'POST',
      body: JSON.stringify({ image: 'python', command: ['python3', '-c', 'print(6*7)'] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as JobRecord).result).toMatchObject({ status: 'ok', stdout: '42\n' });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('lid run streams the output and exits with the job’s code, finding the gateway and key by itself', () => {
    const port = new URL(url).port;
    const r = lid(['run', '--image', 'mini:1', '--', 'sh', '-c', 'echo out; echo err >&2; exit 4'], { LID_PORT: port });
    expect(r).toMatchObject({ code: 4, out: 'out\n' });
    expect(r.err).toContain('err\n');
    const local = path.join(tmp, 'input.bin');
    fs.writeFileSync(local, Buffer.from([0xff, 0x00, 0x41]));
    const withFile = lid(
      ['run', '--image', 'mini:1', '--file', `/app/in.bin=${local}`, '--', 'sh', '-c', 'wc -c < /app/in.bin'],
      {
        LID_PORT: port,
      },
    );
    expect(withFile).toMatchObject({ code: 0, out: '3\n' });
    const timeout = lid(['run', '--image', 'mini:1', '--timeout', '200ms', '--', 'sleep', '5'], { LID_PORT: port });
    expect(timeout.code).toBe(124);
    // Lid itself could not run the job: 125, for a refused flag as for a refused job.
    const badFlag = lid(['run', '--image', 'mini:1', '--memory', '12q', '--', 'true'], { LID_PORT: port });
    expect(badFlag).toMatchObject({ code: 125, err: expect.stringMatching(/"12q" is not a size/) });
    const refused = lid(['run', '--image', 'mini:1', '--pids', '100000', '--', 'true'], { LID_PORT: port });
    expect(refused).toMatchObject({ code: 125, err: expect.stringMatching(/limits.pids 100000 is above/) });
  });

  it('lid tenants creates a tenant whose key works and sees only its own jobs', async () => {
    const created = JSON.parse(lid(['tenants', 'create', 'acme', '--concurrency', '2']).out) as {
      tenant: { name: string };
      apiKey: string;
    };
    expect(created.tenant.name).toBe('acme');
    const res = await api(
      '/v1/jobs?wait=10',
      { method: 'POST', body: JSON.stringify({ image: 'mini:1', command: ['true'] }) },
      created.apiKey,
    );
    const { id } = (await res.json()) as JobRecord;
    expect((await api(`/v1/jobs/${id}`, {}, created.apiKey)).status).toBe(200);
    expect((await api(`/v1/jobs/${id}`)).status).toBe(404); // the dev tenant cannot see acme's job
  });

  it('does not let a tenant with a deep backlog starve another', { timeout: 120_000 }, async () => {
    const busy = JSON.parse(
      lid(['tenants', 'create', 'busy', '--concurrency', '2', '--rate', '100000', '--max-queued', '100000']).out,
    ) as { apiKey: string };
    const backlog = { jobs: Array.from({ length: 1000 }, () => ({ image: 'mini:1', command: ['sleep', '0.05'] })) };
    for (let i = 0; i < 2; i++)
      expect((await api('/v1/batches', { method: 'POST', body: JSON.stringify(backlog) }, busy.apiKey)).status).toBe(
        202,
      );
    const t = Date.now();
    const res = await api('/v1/jobs?wait=30', {
      method: 'POST',
      body: JSON.stringify({ image: 'mini:1', command: ['echo', 'not starved'] }),
    });
    const record = (await res.json()) as JobRecord;
    expect(record).toMatchObject({ state: 'completed', attempts: 1, result: { stdout: 'not starved\n' } });
    expect(Date.now() - t).toBeLessThan(5000); // behind 2000 queued jobs that would take > 50 s at busy's pace
  });

  it('delivers a batch’s callback once its last job has ended, signed with the tenant’s secret', async () => {
    // `lid up` never prints the development tenant's signing secret: rotating it prints a new one.
    const rotated = lid(['tenants', 'rotate-signing-secret', 'dev']);
    expect(rotated.code, rotated.err).toBe(0);
    const { signingSecret } = JSON.parse(rotated.out) as { signingSecret: string };
    const received: { signature: string; body: string }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ signature: String(req.headers['lid-signature']), body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const callbackUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/batch`;
      const jobs = [1, 2, 3].map((i) => ({ image: 'mini:1', command: ['echo', `b${i}`] }));
      const res = await api('/v1/batches', { method: 'POST', body: JSON.stringify({ jobs, callbackUrl }) });
      const { id } = (await res.json()) as { id: string };
      for (let i = 0; i < 200 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(received).toHaveLength(1);
      const summary = JSON.parse(received[0]!.body) as {
        id: string;
        total: number;
        counts: Record<string, number>;
        jobs: JobRecord[];
      };
      expect(summary).toMatchObject({ id, total: 3, counts: { completed: 3 } });
      expect(summary.jobs.map((j) => j.result?.stdout).sort()).toEqual(['b1\n', 'b2\n', 'b3\n']);
      const [, t, mac] = /^t=(\d+),v1=([a-f0-9]{64})$/.exec(received[0]!.signature)!;
      expect(crypto.createHmac('sha256', signingSecret).update(`${t}.${received[0]!.body}`).digest('hex')).toBe(mac);
    } finally {
      server.close();
    }
  });

  it('serves a finished job’s record from a restarted gateway, and stops cleanly', async () => {
    const res = await api('/v1/jobs?wait=10', {
      method: 'POST',
      body: JSON.stringify({ image: 'mini:1', command: ['echo', 'kept'] }),
    });
    const { id } = (await res.json()) as JobRecord;
    expect(await stop(up.child)).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'redis', 'endpoint.json'))).toBe(false); // lid up stopped the Redis it started
    up = await startLid(['up'], /API reference: (http:\/\/127\.0\.0\.1:\d+)\/docs\n/);
    url = up.match[1]!;
    const again = (await (await api(`/v1/jobs/${id}`)).json()) as JobRecord;
    expect(again).toMatchObject({ id, state: 'completed', attempts: 1, result: { stdout: 'kept\n' } });
  });
});
