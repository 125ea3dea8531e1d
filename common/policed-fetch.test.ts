// PolicedFetch against real HTTP servers on loopback addresses the test starts (127.0.0.1, 127.0.0.2, ...): refused
// addresses get no connection at all, a name that changes its answer between lookups (DNS rebinding) never makes
// Lid connect to the second answer, redirects are counted and checked hop by hop, and Authorization stays with
// its origin. Addresses off the machine (169.254.169.254) only ever appear through the test's resolver, and a
// guard in beforeConnect stops any connection off loopback, so a broken policy could not send a packet there.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { serve, type TestServer } from '../test/hostile-registry.js';
import { EgressPolicy } from './egress-policy.js';
import { isLidError } from './errors.js';
import { type ConnectTarget, PolicedFetch, type PolicedFetchOptions, type Resolver } from './policed-fetch.js';

const servers: TestServer[] = [];
const clients: PolicedFetch[] = [];
afterAll(async () => {
  await Promise.all([...clients, ...servers].map((x) => x.close()));
});

async function server(address: string, handler?: http.RequestListener, port = 0): Promise<TestServer> {
  const s = await serve(
    address,
    handler ?? ((_req, res) => res.writeHead(200, { connection: 'close' }).end('ok')),
    port,
  );
  servers.push(s);
  return s;
}

let connects: ConnectTarget[] = [];
function guard(target: ConnectTarget): void {
  connects.push(target);
  if (!/^127\.\d+\.\d+\.\d+$|^::ffff:7f[0-9a-f]{2}:/.test(target.address)) {
    throw new Error(`test guard: not connecting to ${target.address}`);
  }
}

function client(allow: string | undefined, opts: Partial<PolicedFetchOptions> = {}): PolicedFetch {
  connects = [];
  const c = new PolicedFetch({ policy: EgressPolicy.parse(allow), beforeConnect: guard, maxRedirects: 5, ...opts });
  clients.push(c);
  return c;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(outcome instanceof Error)) throw new Error('expected the request to fail');
  return outcome;
}

describe('PolicedFetch', () => {
  it('refuses 127.0.0.1 under the default policy without connecting; reaches it when allowed', async () => {
    const target = await server('127.0.0.1');
    const e = await failure(client(undefined).fetch(`http://${target.host}/`));
    expect(isLidError(e) && e.code).toBe('invalid_spec');
    expect(e.message).toContain('Lid does not connect to 127.0.0.1, a loopback address');
    expect(target.connections).toBe(0);
    expect(connects).toEqual([]);

    const res = await client('127.0.0.0/8').fetch(`http://${target.host}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(target.seen).toHaveLength(1);
  });

  it('judges [::ffff:127.0.0.1] as 127.0.0.1', async () => {
    const target = await server('127.0.0.1');
    const port = target.host.split(':')[1];
    const mapped = `http://[::ffff:127.0.0.1]:${port}/`;
    expect((await failure(client('10.0.0.0/8').fetch(mapped))).message).toContain('a loopback address');
    expect(target.connections).toBe(0);
    expect((await client('127.0.0.0/8').fetch(mapped)).status).toBe(200);
    expect(target.seen).toHaveLength(1);
  });

  it('refuses a name that resolves to 169.254.169.254 before connecting; allowed, it would connect', async () => {
    const resolve: Resolver = async () => [{ address: '169.254.169.254', family: 4 }];
    const e = await failure(client(undefined, { resolve }).fetch('http://metadata.test/latest/meta-data/'));
    expect(e.message).toContain('metadata.test (169.254.169.254), a metadata address');
    expect(isLidError(e) && e.details).toMatchObject({ host: 'metadata.test', kind: 'metadata' });
    expect(connects).toEqual([]);
    // "true" still refuses metadata
    await failure(client('true', { resolve }).fetch('http://metadata.test/'));
    expect(connects).toEqual([]);

    // Control: allowed explicitly, the connection is attempted (and stopped by the test's guard).
    const control = await failure(client('169.254.169.254/32', { resolve }).fetch('http://metadata.test/'));
    expect(String(control.cause)).toContain('test guard: not connecting to 169.254.169.254');
    expect(connects).toEqual([{ hostname: 'metadata.test', address: '169.254.169.254', port: 80 }]);
  });

  it('tries the allowed addresses of a name in order, skipping refused ones; refuses a name with none', async () => {
    const target = await server('127.0.0.1');
    const port = target.host.split(':')[1];
    // 127.0.0.2 has nothing on that port: the connection falls through to the next allowed address.
    const resolve: Resolver = async () => [
      { address: '10.9.9.9', family: 4 },
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    expect((await client('127.0.0.0/8', { resolve }).fetch(`http://two.test:${port}/`)).status).toBe(200);
    expect(connects.map((c) => c.address)).toEqual(['127.0.0.2', '127.0.0.1']);
    const e = await failure(client(undefined, { resolve }).fetch(`http://two.test:${port}/`));
    expect(e.message).toContain('two.test (10.9.9.9), a private address');
    expect(connects).toEqual([]);
  });

  it('DNS rebinding: connects only to the address it checked, never to a later answer', async () => {
    const first = await server('127.0.0.1');
    const port = Number(first.host.split(':')[1]);
    const second = await server('127.0.0.2', undefined, port); // same port, the rebound address
    let lookups = 0;
    // Answers the allowed address once, then the refused one: a client that resolved once to check and again to
    // connect would reach 127.0.0.2.
    const resolve: Resolver = async () => [{ address: ++lookups === 1 ? '127.0.0.1' : '127.0.0.2', family: 4 }];

    const http = client('127.0.0.1/32', { resolve });
    const res = await http.fetch(`http://rebind.test:${port}/`);
    expect(res.status).toBe(200);
    await res.text();
    expect(first.seen).toHaveLength(1);
    expect(second.connections).toBe(0);
    expect(lookups).toBe(1); // one lookup for the one connection: what was checked is what was used

    // The server closed that connection; the next one resolves again, gets 127.0.0.2, and is refused.
    const e = await failure(http.fetch(`http://rebind.test:${port}/`));
    expect(e.message).toContain('rebind.test (127.0.0.2), a loopback address');
    expect(second.connections).toBe(0);
    expect(connects.map((c) => c.address)).toEqual(['127.0.0.1']);

    // Control: with 127.0.0.2 allowed too, the rebound answer is really reachable.
    lookups = 0;
    const both = client('127.0.0.1/32,127.0.0.2/32', { resolve });
    await (await both.fetch(`http://rebind.test:${port}/`)).text();
    await (await both.fetch(`http://rebind.test:${port}/`)).text();
    expect(second.seen).toHaveLength(1);
  });

  it('checks every redirect hop, and gives up after maxRedirects', async () => {
    const elsewhere = await server('127.0.0.2');
    const hop = await server('127.0.0.1', (_req, res) =>
      res.writeHead(302, { location: `http://${elsewhere.host}/next` }).end(),
    );
    const e = await failure(client('127.0.0.1/32').fetch(`http://${hop.host}/`));
    expect(e.message).toContain('127.0.0.2, a loopback address');
    expect(elsewhere.connections).toBe(0);
    expect((await client('127.0.0.1/32,127.0.0.2/32').fetch(`http://${hop.host}/`)).status).toBe(200);
    expect(elsewhere.seen.map((r) => r.url)).toEqual(['/next']);

    const loop = await server('127.0.0.1', (req, res) => res.writeHead(307, { location: req.url + 'x' }).end());
    const looped = await failure(client('127.0.0.1/32').fetch(`http://${loop.host}/`));
    expect(looped.message).toBe(`${loop.host} redirected Lid more than 5 times`);
    expect(loop.seen).toHaveLength(6);

    const noFollow = await client('127.0.0.1/32', { maxRedirects: 0 }).fetch(`http://${hop.host}/`);
    expect(noFollow.status).toBe(302);

    const file = await server('127.0.0.1', (_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end());
    expect((await failure(client('127.0.0.1/32').fetch(`http://${file.host}/`))).message).toBe(
      'Lid fetches only http and https URLs, not file:',
    );
  });

  it('keeps Authorization within its origin across redirects', async () => {
    const other = await server('127.0.0.2');
    const same = await server('127.0.0.1', (req, res) => {
      if (req.url === '/start') return res.writeHead(302, { location: '/again' }).end();
      if (req.url === '/again') return res.writeHead(302, { location: `http://${other.host}/away` }).end();
      res.writeHead(404).end();
    });
    const res = await client('127.0.0.0/8').fetch(`http://${same.host}/start`, {
      headers: { authorization: 'Bearer secret' },
    });
    expect(res.status).toBe(200);
    expect(same.seen.map((r) => [r.url, r.authorization])).toEqual([
      ['/start', 'Bearer secret'],
      ['/again', 'Bearer secret'],
    ]);
    expect(other.seen.map((r) => [r.url, r.authorization])).toEqual([['/away', undefined]]);
  });

  it('speaks TLS to the checked address but verifies the certificate against the name', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-policed-tls-'));
    try {
      const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
      const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=reg.test'];
      execFileSync('openssl', [...args, '-addext', 'subjectAltName=DNS:reg.test', '-keyout', key, '-out', cert], {
        stdio: 'ignore',
      });
      const names: unknown[] = [];
      const srv = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
        names.push((req.socket as TLSSocket).servername);
        res.writeHead(200, { connection: 'close' }).end('ok');
      });
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const port = (srv.address() as AddressInfo).port;
      try {
        const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
        const tls = client('127.0.0.1/32', { resolve, ca: fs.readFileSync(cert, 'utf8') });
        const res = await tls.fetch(`https://reg.test:${port}/`);
        expect(res.status).toBe(200);
        expect(names).toEqual(['reg.test']); // SNI carried the name, though the connection went to 127.0.0.1
        for (const host of ['127.0.0.1', 'other.test']) {
          const e = await failure(tls.fetch(`https://${host}:${port}/`));
          expect(String((e.cause as Error | undefined)?.message), host).toMatch(
            /does not match certificate's altnames/,
          );
        }
      } finally {
        srv.closeAllConnections();
        await new Promise((r) => srv.close(r));
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
