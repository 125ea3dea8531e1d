// Registry pulls against hostile registries on loopback (test/hostile-registry.ts): a blob redirect and a token
// realm pointing at addresses the egress policy refuses, errors whose bodies carry a marker that must never reach an
// error, a layer bigger than LID_PULL_MAX_BYTES, and a registry that trickles past LID_PULL_TIMEOUT. Each attack has
// its control in the same test: the same registry with the policy or cap widened, where the pull goes through.
// Every connection passes a guard that records it and refuses anything off loopback, so that even a broken policy
// never sends a packet to an address these tests do not own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressPolicy } from '../../common/egress-policy.js';
import { isLidError, type LidError } from '../../common/errors.js';
import type { ConnectTarget } from '../../common/policed-fetch.js';
import {
  MARKER,
  startBlobServer,
  startHostileRegistry,
  startTokenServer,
  TOKEN,
  type TestImage,
  type TestServer,
  testImage,
} from '../../test/hostile-registry.js';
import { ImageStore } from '../store.js';
import { type PullOptions, pullImage } from './client.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-registry-egress-'));
const servers: TestServer[] = [];
let image: TestImage;
let connects: ConnectTarget[] = [];

/** Records every connection; anything off 127.0.0.0/8 is stopped here, whatever the policy said. */
function guard(target: ConnectTarget): void {
  connects.push(target);
  if (!/^127\.\d+\.\d+\.\d+$/.test(target.address)) throw new Error(`test guard: not connecting to ${target.address}`);
}

const started = async (server: Promise<TestServer>) => {
  const s = await server;
  servers.push(s);
  return s;
};

let stores = 0;
/** Pulls into a fresh store with `allow` as LID_ALLOW_PRIVATE_EGRESS (or the egress options given). */
async function pull(reference: string, opts: Partial<PullOptions> & { allow?: string }) {
  const store = ImageStore.open(path.join(tmp, `store-${++stores}`));
  const { allow, ...rest } = opts;
  connects = [];
  const result = await pullImage(reference, store, {
    egress: { policy: EgressPolicy.parse(allow), beforeConnect: guard },
    maxBytes: 1 << 20,
    timeoutMs: 30_000,
    plainHttp: true,
    authFiles: { env: {}, homedir: path.join(tmp, 'no-home') },
    ...rest,
  }).then(
    (ok) => ({ ok, error: undefined }),
    (error: unknown) => ({ ok: undefined, error }),
  );
  return { store, ...result };
}

/** The pull's LidError, checked to quote nothing the hostile servers wrote. */
function refusal(error: unknown): LidError {
  if (!isLidError(error)) throw new Error(`expected a LidError, got ${String(error)}`);
  expect(error.message).not.toContain(MARKER);
  expect(JSON.stringify(error.toJSON())).not.toContain(MARKER);
  return error;
}

function expectNothingKept(store: ImageStore): void {
  expect(store.refs()).toEqual({});
  expect(store.hasBlob(image.layer.digest)).toBe(false);
  expect(fs.readdirSync(store.layout.tmpDir)).toEqual([]);
}

beforeAll(async () => {
  image = await testImage();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a registry that sends Lid elsewhere', () => {
  it('refuses a blob redirect to 127.0.0.2 before connecting; with 127.0.0.2 allowed the same pull succeeds', async () => {
    const storage = await started(startBlobServer(image, '127.0.0.2'));
    const registry = await started(startHostileRegistry(image, { redirectBlobsTo: `http://${storage.host}` }));

    const refused = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32' });
    const e = refusal(refused.error);
    expect(e.code).toBe('invalid_spec');
    expect(e.message).toContain('127.0.0.2, a loopback address');
    expect(e.details).toMatchObject({ address: '127.0.0.2', kind: 'loopback' });
    expect(storage.connections).toBe(0);
    expect(connects.map((c) => c.address)).not.toContain('127.0.0.2');
    expect(registry.seen.some((r) => r.url.includes('/blobs/'))).toBe(true); // the redirect was really sent
    expectNothingKept(refused.store);

    const allowed = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32,127.0.0.2/32' });
    expect(allowed.error).toBeUndefined();
    expect(allowed.ok?.manifestDigest).toBe(image.manifest.digest);
    expect(allowed.store.hasBlob(image.layer.digest)).toBe(true);
    expect(storage.seen.map((r) => r.url)).toContain(`/blobs/${image.layer.digest}`);
  });

  it('refuses a redirect to a name that resolves to 169.254.169.254 without connecting to it', async () => {
    const registry = await started(startHostileRegistry(image, { redirectBlobsTo: 'http://metadata.internal.test' }));
    const resolve = async (hostname: string) =>
      hostname === 'metadata.internal.test' ? [{ address: '169.254.169.254', family: 4 }] : [];

    const refused = await pull(`${registry.host}/test/app:v1`, {
      egress: { policy: EgressPolicy.parse('127.0.0.1/32'), resolve, beforeConnect: guard },
    });
    const e = refusal(refused.error);
    expect(e.message).toContain('metadata.internal.test (169.254.169.254), a metadata address');
    expect(new Set(connects.map((c) => c.address))).toEqual(new Set(['127.0.0.1'])); // the registry only
    expectNothingKept(refused.store);

    // Control: with the metadata address allowed, the pull does try to connect there (the guard stops it), so the
    // refusal above came from the policy and not from a broken redirect.
    const policy = EgressPolicy.parse('127.0.0.1/32,169.254.169.254/32');
    const control = await pull(`${registry.host}/test/app:v1`, {
      egress: { policy, resolve, beforeConnect: guard },
    });
    expect(String((control.error as Error)?.message ?? control.error)).toContain(
      'test guard: not connecting to 169.254.169.254',
    );
    expect(connects.map((c) => c.address)).toContain('169.254.169.254');
  });

  it('refuses a token realm on 127.0.0.3; with it allowed, the token is fetched and used', async () => {
    const tokens = await started(startTokenServer('127.0.0.3'));
    const registry = await started(startHostileRegistry(image, { tokenRealm: `http://${tokens.host}/token` }));

    const refused = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32' });
    const e = refusal(refused.error);
    expect(e.message).toContain('127.0.0.3, a loopback address');
    expect(tokens.connections).toBe(0);
    expectNothingKept(refused.store);

    const allowed = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32,127.0.0.3/32' });
    expect(allowed.error).toBeUndefined();
    expect(tokens.seen).toHaveLength(1);
    expect(registry.seen.at(-1)?.authorization).toBe(`Bearer ${TOKEN}`);
  });
});

describe('what a registry says stays out of errors', () => {
  it('reports a 500 and a 403 by status and spec code only', async () => {
    for (const [status, text, code] of [
      [500, 'answered 500 Internal Server Error (DENIED) for the manifest', 'setup_failed'],
      [403, 'denied access to the manifest', 'invalid_spec'],
    ] as const) {
      const registry = await started(startHostileRegistry(image, { manifestStatus: status }));
      const e = refusal((await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32' })).error);
      expect(e.code).toBe(code);
      expect(e.message).toContain(`registry ${registry.host} ${text}`);
    }
  });
});

describe('size and time caps', () => {
  it('refuses an image whose manifest announces more than the cap before downloading any blob', async () => {
    const registry = await started(startHostileRegistry(image, { announcedLayerSize: 2 << 20 }));
    const refused = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32', maxBytes: 1 << 20 });
    const e = refusal(refused.error);
    expect(e.code).toBe('invalid_spec');
    expect(e.message).toContain(`is ${(2 << 20) + image.config.size} bytes compressed, over the limit of 1m`);
    expect(e.message).toContain('LID_PULL_MAX_BYTES');
    expect(registry.seen.filter((r) => r.url.includes('/blobs/'))).toEqual([]);
    expectNothingKept(refused.store);

    // Control: an honest registry and a cap of exactly the image's size.
    const honest = await started(startHostileRegistry(image));
    const exact = image.config.size + image.layer.size;
    const ok = await pull(`${honest.host}/test/app:v1`, { allow: '127.0.0.1/32', maxBytes: exact });
    expect(ok.error).toBeUndefined();
    const over = await pull(`${honest.host}/test/app:v1`, { allow: '127.0.0.1/32', maxBytes: exact - 1 });
    expect(refusal(over.error).message).toContain('over the limit');
  });

  it('stops reading a blob at its announced size when the registry sends more', async () => {
    const registry = await started(startHostileRegistry(image, { announcedLayerSize: 10 }));
    const refused = await pull(`${registry.host}/test/app:v1`, { allow: '127.0.0.1/32' });
    expect(refusal(refused.error).message).toContain("larger than its descriptor's 10 bytes");
    expectNothingKept(refused.store);
  });

  it('cuts off a registry that trickles past the deadline, naming LID_PULL_TIMEOUT', async () => {
    const slow = await started(startHostileRegistry(image, { trickleMs: 20 }));
    const bytes = image.config.size + image.layer.size;
    expect(bytes * 20).toBeGreaterThan(3000); // the whole image would take seconds at this pace

    const started_ = Date.now();
    const cut = await pull(`${slow.host}/test/app:v1`, { allow: '127.0.0.1/32', timeoutMs: 1000 });
    const elapsed = Date.now() - started_;
    const e = refusal(cut.error);
    expect(e.code).toBe('setup_failed');
    expect(e.message).toBe(
      `pulling ${slow.host}/test/app:v1 from registry ${slow.host} took longer than the 1 s a pull may take (LID_PULL_TIMEOUT)`,
    );
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(3000);
    expectNothingKept(cut.store);

    // Control: the same registry within a deadline it can meet.
    const fast = await started(startHostileRegistry(image, { trickleMs: 1 }));
    const ok = await pull(`${fast.host}/test/app:v1`, { allow: '127.0.0.1/32', timeoutMs: 20_000 });
    expect(ok.error).toBeUndefined();
  });
});
