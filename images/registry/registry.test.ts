// Pulls from real registries on loopback: Debian's docker-registry (distribution 2.8) three times over (anonymous,
// htpasswd Basic auth, and token auth backed by a token server written here that signs RS256 JWTs with a
// self-signed certificate), filled by skopeo from an OCI layout built in the test. A small proxy corrupts chosen
// responses to prove that digests are checked. The auth-file and challenge parsers are tested on their own at the end.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy } from '../../common/egress-policy.js';
import { isLidError } from '../../common/errors.js';
import { busyboxLayer, layerTar } from '../../test/oci-fixtures.js';
import { MEDIA, hostPlatform } from '../oci.js';
import { ImageStore } from '../store.js';
import { parseChallenges } from './auth.js';
import { type PullOptions, pullImage } from './client.js';
import { findCredentials, parseCredsFlag } from './credentials.js';

const USER = 'alice';
const PASS = 's3cret:with-colon';
const ISSUER = 'lid-test-issuer';
const SERVICE = 'lid-test-registry';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-registry-test-'));
const noAuthFiles = { env: {}, homedir: path.join(tmp, 'empty-home') }; // never read the machine's real logins
const children: ChildProcess[] = [];
const servers: http.Server[] = [];
let tokenRequests = 0;

interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}
const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
const blob = (bytes: Buffer): Blob => ({ digest: sha(bytes), size: bytes.length, bytes });
const json = (value: unknown) => blob(Buffer.from(JSON.stringify(value)));

// The images, filled in by buildLayout(): one single-platform busybox image and a two-platform index.
const img = {} as {
  busybox: { manifest: Blob; config: Blob; layer: Blob };
  arm64: { manifest: Blob; config: Blob; layer: Blob };
  index: Blob;
};
const reg = {} as { anon: string; basic: string; token: string; corrupt: string };

function installIfMissing(): void {
  const need: [string, string][] = [
    ['/usr/bin/docker-registry', 'docker-registry'],
    ['/usr/bin/skopeo', 'skopeo'],
    ['/usr/bin/htpasswd', 'apache2-utils'],
    ['/bin/busybox', 'busybox-static'],
    ['/usr/bin/openssl', 'openssl'],
  ];
  const missing = need.filter(([file]) => !fs.existsSync(file)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`install ${missing.join(' ')} (apt-get install), or run the tests as root`);
  execFileSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-q', ...missing], {
    stdio: 'ignore',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Writes an OCI layout holding the images under the ref names "single" and "multi" (what skopeo copies from). */
async function buildLayout(dir: string): Promise<void> {
  const image = async (architecture: string, entries: Parameters<typeof layerTar>[0]) => {
    const tar = await layerTar(entries);
    const layer = blob(gzipSync(tar));
    const config = json({
      architecture,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [sha(tar)] },
    });
    const manifest = json({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size },
      layers: [{ mediaType: MEDIA.ociLayerGzip, digest: layer.digest, size: layer.size }],
    });
    return { manifest, config, layer };
  };
  img.busybox = await image('amd64', busyboxLayer());
  img.arm64 = await image('arm64', [{ type: 'file', name: 'etc/arch', content: 'arm64\n' }]);
  const entry = (m: Blob, architecture: string) => ({
    mediaType: MEDIA.ociManifest,
    digest: m.digest,
    size: m.size,
    platform: { architecture, os: 'linux' },
  });
  img.index = json({
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [entry(img.busybox.manifest, 'amd64'), entry(img.arm64.manifest, 'arm64')],
  });
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  for (const b of [img.index, ...Object.values(img.busybox), ...Object.values(img.arm64)]) {
    fs.writeFileSync(path.join(blobs, b.digest.slice(7)), b.bytes);
  }
  const ref = (b: Blob, mediaType: string, name: string) => ({
    mediaType,
    digest: b.digest,
    size: b.size,
    annotations: { 'org.opencontainers.image.ref.name': name },
  });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [ref(img.busybox.manifest, MEDIA.ociManifest, 'single'), ref(img.index, MEDIA.ociIndex, 'multi')],
    }),
  );
}

/** Starts /usr/bin/docker-registry on a free loopback port with its own storage; resolves once it answers. */
async function startRegistry(name: string, auth: Record<string, unknown> | undefined): Promise<string> {
  const port = await freePort();
  const dir = path.join(tmp, `registry-${name}`);
  fs.mkdirSync(dir);
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: path.join(dir, 'data') } },
    http: { addr: `127.0.0.1:${port}`, secret: crypto.randomBytes(16).toString('hex') },
    ...(auth ? { auth } : {}),
  };
  const configFile = path.join(dir, 'config.yml');
  fs.writeFileSync(configFile, JSON.stringify(config)); // JSON is YAML
  const log = fs.openSync(path.join(dir, 'registry.log'), 'w');
  const child = spawn('/usr/bin/docker-registry', ['serve', configFile], { stdio: ['ignore', log, log] });
  children.push(child);
  process.once('exit', () => child.kill()); // should the test process die before afterAll
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break;
    const up = await fetch(`http://${host}/v2/`).then(
      () => true,
      () => false,
    );
    if (up) return host;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`registry ${name} did not start: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8')}`);
}

/** A token server in the shape of Docker's: Basic credentials in, an RS256 JWT granting the asked scopes out. */
async function startTokenServer(keyPem: string, certPem: string): Promise<string> {
  const x5c = [new crypto.X509Certificate(certPem).raw.toString('base64')];
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return listen((req, res) => {
    tokenRequests++;
    const url = new URL(req.url ?? '/', 'http://token');
    const expected = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad or no credentials"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const access = url.searchParams.getAll('scope').map((scope) => {
      const [type, ...rest] = scope.split(':');
      const actions = rest.pop()!.split(',');
      return { type, name: rest.join(':'), actions };
    });
    const claims = {
      iss: ISSUER,
      sub: USER,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const signed = `${b64url({ typ: 'JWT', alg: 'RS256', x5c })}.${b64url(claims)}`;
    const signature = crypto.sign('sha256', Buffer.from(signed), keyPem).toString('base64url');
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${signed}.${signature}`, expires_in: 300 }));
  });
}

/** Paths (under /v2/) whose responses the proxy corrupts; each test sets its own. */
const corruptPaths = new Set<string>();

/** Forwards to `upstream`, flipping the last byte of the responses in corruptPaths: same size, wrong digest. */
function startCorruptingProxy(upstream: string): Promise<string> {
  return listen((req, res) => {
    void (async () => {
      const up = await fetch(`http://${upstream}${req.url}`, { headers: { accept: req.headers.accept ?? '*/*' } });
      const body = Buffer.from(await up.arrayBuffer());
      if (corruptPaths.has(req.url ?? '')) body[body.length - 1]! ^= 0xff;
      const headers: Record<string, string> = { 'content-length': String(body.length) };
      for (const h of ['content-type', 'docker-content-digest']) {
        const v = up.headers.get(h);
        if (v) headers[h] = v;
      }
      res.writeHead(up.status, headers).end(body);
    })().catch(() => res.destroy());
  });
}

/** Asynchronous, because the token server skopeo talks to runs in this very process. */
async function push(host: string, layoutRef: string, dest: string, creds?: string): Promise<void> {
  const args = [
    'copy',
    '--all',
    '--insecure-policy',
    '--dest-tls-verify=false',
    ...(creds ? ['--dest-creds', creds] : []),
  ];
  const source = `oci:${path.join(tmp, 'layout')}:${layoutRef}`;
  await promisify(execFile)('skopeo', [...args, source, `docker://${host}/${dest}`], { timeout: 120_000 });
}

let storeCount = 0;
function freshStore(): ImageStore {
  return ImageStore.open(path.join(tmp, `store-${++storeCount}`));
}

// Pulls as `lid images pull` makes them (the host's logins, here none), except that the registries are on loopback,
// which a pull may reach only when allowed; the caps are the configuration's defaults.
const defaults: PullOptions = {
  egress: { policy: EgressPolicy.parse('127.0.0.0/8') },
  hostCredentials: 'any',
  maxBytes: 8 * 1024 ** 3,
  timeoutMs: 600_000,
  plainHttp: true,
  authFiles: noAuthFiles,
};

function pull(reference: string, opts: Partial<PullOptions> = {}) {
  const store = freshStore();
  return { store, result: pullImage(reference, store, { ...defaults, ...opts }) };
}

async function lidError(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isLidError(error)) throw new Error(`expected a LidError, got ${String(error)}`);
  return error;
}

beforeAll(async () => {
  installIfMissing();
  await buildLayout(path.join(tmp, 'layout'));
  const htpasswd = path.join(tmp, 'htpasswd');
  fs.writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', USER, PASS]));
  const key = path.join(tmp, 'token-key.pem');
  const cert = path.join(tmp, 'token-cert.pem');
  const req = '-x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=lid-test-token'.split(' ');
  execFileSync('openssl', ['req', ...req, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const tokenServer = await startTokenServer(fs.readFileSync(key, 'utf8'), fs.readFileSync(cert, 'utf8'));

  reg.anon = await startRegistry('anon', undefined);
  reg.basic = await startRegistry('basic', { htpasswd: { realm: 'lid-test', path: htpasswd } });
  reg.token = await startRegistry('token', {
    token: { realm: `http://${tokenServer}/token`, service: SERVICE, issuer: ISSUER, rootcertbundle: cert },
  });
  const creds = `${USER}:${PASS}`;
  for (const [host, c] of [[reg.anon], [reg.basic, creds], [reg.token, creds]] as [string, string?][]) {
    await push(host, 'single', 'lid/busybox:v1', c);
    await push(host, 'multi', 'lid/multi:v1', c);
  }
  reg.corrupt = await startCorruptingProxy(reg.anon);
}, 600_000);

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('pullImage from an anonymous registry', () => {
  it('stores the manifest (byte for byte), config and layer of a tag, names it, and reports progress', async () => {
    const progress: [number, number][] = [];
    const { store, result } = pull(`${reg.anon}/lid/busybox:v1`, {
      onProgress: (_what, done, total) => progress.push([done, total]),
    });
    const { name, manifestDigest } = await result;
    expect(name).toBe(`${reg.anon}/lid/busybox:v1`);
    expect(manifestDigest).toBe(img.busybox.manifest.digest);
    expect(store.readBlob(manifestDigest).equals(img.busybox.manifest.bytes)).toBe(true);
    expect(store.hasBlob(img.busybox.config.digest)).toBe(true);
    expect(store.hasBlob(img.busybox.layer.digest)).toBe(true);
    expect(store.lookup(name)).toBe(manifestDigest);
    const total = img.busybox.config.size + img.busybox.layer.size;
    expect(progress.at(-1)).toEqual([total, total]);

    // A second pull into the same store finds every blob present and downloads nothing.
    const again: number[] = [];
    await pullImage(`${reg.anon}/lid/busybox:v1`, store, {
      ...defaults,
      onProgress: (_w, d) => again.push(d),
    });
    expect(again).toEqual([]);
  });

  it("resolves a multi-arch index to the host's platform, and keeps the index", async () => {
    const host = hostPlatform().architecture;
    const { store, result } = pull(`${reg.anon}/lid/multi:v1`);
    const { manifestDigest } = await result;
    expect(manifestDigest).toBe(host === 'arm64' ? img.arm64.manifest.digest : img.busybox.manifest.digest);
    expect(store.hasBlob(img.index.digest)).toBe(true);
    expect(store.lookup(`${reg.anon}/lid/multi:v1`)).toBe(manifestDigest);
  });

  it('resolves an index to an asked-for platform, and names the available ones when none matches', async () => {
    const arm = pull(`${reg.anon}/lid/multi:v1`, { platform: { os: 'linux', architecture: 'arm64' } });
    expect((await arm.result).manifestDigest).toBe(img.arm64.manifest.digest);
    expect(arm.store.hasBlob(img.arm64.layer.digest)).toBe(true);

    const e = await lidError(
      pull(`${reg.anon}/lid/multi:v1`, { platform: { os: 'linux', architecture: 's390x' } }).result,
    );
    expect(e.code).toBe('not_found');
    expect(e.message).toContain('linux/s390x');
    expect(e.message).toContain('available: linux/amd64, linux/arm64');
  });

  it('pulls by digest, verifying the manifest against it, and names the image repo@digest', async () => {
    const digest = img.busybox.manifest.digest;
    const { name, manifestDigest } = await pull(`${reg.anon}/lid/busybox@${digest}`).result;
    expect(name).toBe(`${reg.anon}/lid/busybox@${digest}`);
    expect(manifestDigest).toBe(digest);

    const byIndex = await pull(`${reg.anon}/lid/multi@${img.index.digest}`, {
      platform: { os: 'linux', architecture: 'amd64' },
    }).result;
    expect(byIndex).toEqual({ name: `${reg.anon}/lid/multi@${img.index.digest}`, manifestDigest: digest });
  });

  it('says not_found for a tag or repository the registry lacks', async () => {
    for (const ref of [`${reg.anon}/lid/busybox:nope`, `${reg.anon}/lid/nothing:v1`]) {
      const e = await lidError(pull(ref).result);
      expect(e.code).toBe('not_found');
      expect(e.message).toBe(`image ${ref} not found in registry ${reg.anon}`);
    }
  });

  it('detects a blob whose bytes do not match its digest, and keeps nothing of it', async () => {
    corruptPaths.clear();
    corruptPaths.add(`/v2/lid/busybox/blobs/${img.busybox.layer.digest}`);
    const { store, result } = pull(`${reg.corrupt}/lid/busybox:v1`);
    const e = await lidError(result);
    expect(e.code).toBe('invalid_image');
    expect(e.message).toContain(`registry ${reg.corrupt} sent a bad blob for ${reg.corrupt}/lid/busybox:v1`);
    expect(e.message).toContain(img.busybox.layer.digest);
    expect(store.hasBlob(img.busybox.layer.digest)).toBe(false);
    expect(store.hasBlob(img.busybox.manifest.digest)).toBe(false);
    expect(store.refs()).toEqual({});
    expect(fs.readdirSync(store.layout.tmpDir)).toEqual([]);
  });

  it("detects a manifest that does not match the registry's Docker-Content-Digest or its index entry", async () => {
    corruptPaths.clear();
    corruptPaths.add('/v2/lid/busybox/manifests/v1');
    const byTag = await lidError(pull(`${reg.corrupt}/lid/busybox:v1`).result);
    expect(byTag.code).toBe('invalid_image');
    expect(byTag.message).toContain(`does not match its digest: expected ${img.busybox.manifest.digest}`);

    corruptPaths.clear();
    corruptPaths.add(`/v2/lid/multi/manifests/${img.arm64.manifest.digest}`);
    const arm64 = { os: 'linux', architecture: 'arm64' };
    const { store, result } = pull(`${reg.corrupt}/lid/multi:v1`, { platform: arm64 });
    const byEntry = await lidError(result);
    expect(byEntry.code).toBe('invalid_image');
    expect(byEntry.message).toContain(`does not match its digest: expected ${img.arm64.manifest.digest}`);
    expect(store.hasBlob(img.arm64.manifest.digest)).toBe(false);
    expect(store.refs()).toEqual({});
  });

  it('names the URL when the registry cannot be reached, and hints at --plain-http for TLS to a plain one', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const refused = await lidError(pull(`${closed}/lid/busybox:v1`).result);
    expect(refused.code).toBe('setup_failed');
    expect(refused.message).toBe(`cannot reach registry http://${closed}: connect ECONNREFUSED ${closed}`);

    const tls = await lidError(pull(`${reg.anon}/lid/busybox:v1`, { plainHttp: false }).result);
    expect(tls.code).toBe('setup_failed');
    expect(tls.message).toMatch(
      new RegExp(`^cannot reach registry https://${reg.anon}: [^\\n]+ \\(.*pass --plain-http\\)$`),
    );
  });
});

describe('pullImage with Basic auth (htpasswd)', () => {
  it('pulls with --creds', async () => {
    const { manifestDigest } = await pull(`${reg.basic}/lid/busybox:v1`, { creds: { username: USER, password: PASS } })
      .result;
    expect(manifestDigest).toBe(img.busybox.manifest.digest);
  });

  it('says the credentials were refused, or that some are needed', async () => {
    const wrong = await lidError(
      pull(`${reg.basic}/lid/busybox:v1`, { creds: parseCredsFlag(`${USER}:wrong`) }).result,
    );
    expect(wrong.code).toBe('invalid_spec');
    expect(wrong.message).toContain(`registry ${reg.basic} refused the credentials of user "alice" (from --creds)`);

    const none = await lidError(pull(`${reg.basic}/lid/busybox:v1`).result);
    expect(none.code).toBe('invalid_spec');
    expect(none.message).toContain(`registry ${reg.basic} needs credentials`);
    expect(none.message).toContain('--creds USER:PASS');
  });

  it("takes credentials from containers' auth.json and from Docker's config.json", async () => {
    const authFile = path.join(tmp, 'auth.json');
    const auth = Buffer.from(`${USER}:${PASS}`).toString('base64');
    fs.writeFileSync(authFile, JSON.stringify({ auths: { [reg.basic]: { auth } } }));
    const viaEnv = pull(`${reg.basic}/lid/busybox:v1`, {
      authFiles: { env: { REGISTRY_AUTH_FILE: authFile }, homedir: noAuthFiles.homedir },
    });
    expect((await viaEnv.result).manifestDigest).toBe(img.busybox.manifest.digest);

    const home = path.join(tmp, 'docker-home');
    fs.mkdirSync(path.join(home, '.docker'), { recursive: true });
    fs.writeFileSync(
      path.join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { [`http://${reg.basic}`]: { username: USER, password: PASS } } }),
    );
    const viaHome = pull(`${reg.basic}/lid/busybox:v1`, { authFiles: { env: {}, homedir: home } });
    expect((await viaHome.result).manifestDigest).toBe(img.busybox.manifest.digest);
  });
});

describe('pullImage with token auth (Bearer)', () => {
  it('gets one token from the token server and pulls with it (index, manifest and blobs)', async () => {
    tokenRequests = 0;
    const { store, result } = pull(`${reg.token}/lid/multi:v1`, { creds: { username: USER, password: PASS } });
    const { manifestDigest } = await result;
    expect(manifestDigest).toBe(
      hostPlatform().architecture === 'arm64' ? img.arm64.manifest.digest : img.busybox.manifest.digest,
    );
    expect(store.hasBlob(img.index.digest)).toBe(true);
    expect(tokenRequests).toBe(1); // cached for the scope across four requests
  });

  it('says the credentials were refused, or that some are needed', async () => {
    const wrong = await lidError(
      pull(`${reg.token}/lid/busybox:v1`, { creds: { username: USER, password: 'nope' } }).result,
    );
    expect(wrong.code).toBe('invalid_spec');
    expect(wrong.message).toContain(`registry ${reg.token} refused the credentials of user "alice"`);

    const none = await lidError(pull(`${reg.token}/lid/busybox:v1`).result);
    expect(none.code).toBe('invalid_spec');
    expect(none.message).toContain('pass --creds USER:PASS or log in with skopeo/podman/docker login');
  });
});

describe('credentials', () => {
  it('parses --creds, keeping colons in the password, and names the flag when malformed', () => {
    expect(parseCredsFlag('u:p:q')).toEqual({ username: 'u', password: 'p:q', source: '--creds' });
    for (const bad of ['nocolon', ':pass']) expect(() => parseCredsFlag(bad)).toThrow(/--creds must be USER:PASS/);
  });

  it('searches the auth files in order, matches Docker Hub under its v1 URL, and skips namespaced keys', () => {
    const home = path.join(tmp, 'creds-home');
    const runtime = path.join(tmp, 'creds-runtime');
    const write = (file: string, auths: Record<string, unknown>) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify({ auths }));
    };
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    write(path.join(runtime, 'containers', 'auth.json'), { 'quay.io/team': { auth: b64('team:x') } });
    write(path.join(home, '.config', 'containers', 'auth.json'), { 'quay.io': { auth: b64('podman:y') } });
    write(path.join(home, '.docker', 'config.json'), {
      'quay.io': { auth: b64('docker:z') },
      'https://index.docker.io/v1/': { auth: b64('hub:w') },
    });
    const opts = { env: { XDG_RUNTIME_DIR: runtime }, homedir: home };
    expect(findCredentials('quay.io', opts)?.username).toBe('podman');
    expect(findCredentials('registry-1.docker.io', opts)).toMatchObject({ username: 'hub', password: 'w' });
    expect(findCredentials('example.com', opts)).toBeUndefined();
    expect(findCredentials('quay.io', { ...opts, explicit: { username: 'me', password: 'p' } })?.username).toBe('me');

    fs.writeFileSync(path.join(runtime, 'containers', 'auth.json'), '{not json');
    expect(() => findCredentials('quay.io', opts)).toThrow(/auth.json is not valid JSON/);
  });
});

describe('parseChallenges', () => {
  it('reads quoted values holding commas and escapes, and several challenges in one header', () => {
    const header =
      'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push", Basic realm="say \\"hi\\""';
    expect(parseChallenges(header)).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' },
      },
      { scheme: 'basic', params: { realm: 'say "hi"' } },
    ]);
    expect(parseChallenges('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseChallenges('BASIC Realm = plain , charset="UTF-8"')).toEqual([
      { scheme: 'basic', params: { realm: 'plain', charset: 'UTF-8' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});
