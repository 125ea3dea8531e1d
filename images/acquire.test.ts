// The one acquire policy (store -> recipe -> registry) as the worker and `lid sandbox run --image` use it, against
// registries on loopback (test/hostile-registry.ts) and a real recipe build. A job's pull (tenantPulls) from
// registries that demand credentials, while the host's auth file holds a login for them: the host's login is sent
// only when LID_REGISTRY_HOST_CREDENTIALS lists the registry; each registry (and token server) records the
// Authorization headers it received. The operator's pull (operatorPulls) of the same image reaches loopback and
// uses the login without being told. A name many jobs ask for at once is fetched once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import { MEDIA } from './oci.js';
import {
  startHostileRegistry,
  startTokenServer,
  type TestImage,
  type TestServer,
  testImage,
} from '../test/hostile-registry.js';
import { ImageAcquirer } from './acquire.js';
import { operatorPulls, tenantPulls } from './pull-policy.js';
import { ImageStore } from './store.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-image-acquire-'));
const home = path.join(tmp, 'home'); // the operator's home, with a docker login for the test registries
const LOGIN = { username: 'operator', password: 'host-secret' };
const basicHeader = `Basic ${Buffer.from(`${LOGIN.username}:${LOGIN.password}`).toString('base64')}`;
const servers: TestServer[] = [];
let image: TestImage;
let stores = 0;

/** A worker's acquirer: tenant pulls under `env`'s policy. */
function jobAcquirer(env: Record<string, string>): ImageAcquirer {
  const config = loadConfig({ LID_ALLOW_PRIVATE_EGRESS: '127.0.0.1/32', ...env });
  const store = ImageStore.open(path.join(tmp, `store-${++stores}`));
  // Loopback registries speak plain HTTP, and the auth files are the test's, not the machine's.
  return new ImageAcquirer(store, {
    pulls: { ...tenantPulls(config), plainHttp: true, authFiles: { env: {}, homedir: home } },
  });
}

async function acquire(p: ImageAcquirer, name: string): Promise<unknown> {
  return p.acquire(name).then(
    (held) => {
      held.release();
      return undefined;
    },
    (e: unknown) => e,
  );
}

beforeAll(async () => {
  image = await testImage();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

function login(hosts: string[]): void {
  const auth = Buffer.from(`${LOGIN.username}:${LOGIN.password}`).toString('base64');
  fs.mkdirSync(path.join(home, '.docker'), { recursive: true });
  fs.writeFileSync(
    path.join(home, '.docker', 'config.json'),
    JSON.stringify({ auths: Object.fromEntries(hosts.map((h) => [h, { auth }])) }),
  );
}

describe("a job's image pull and the host's registry logins", () => {
  it('sends no host login to a Basic-auth registry unless LID_REGISTRY_HOST_CREDENTIALS lists it', async () => {
    const registry = await startHostileRegistry(image, { basic: LOGIN });
    servers.push(registry);
    login([registry.host]);

    const refused = await acquire(jobAcquirer({}), `${registry.host}/test/app:v1`);
    expect(isLidError(refused) && refused.code).toBe('invalid_spec');
    expect((refused as Error).message).toContain(
      `registry ${registry.host} needs credentials to pull test/app: Lid pulls images for jobs without the host's registry logins unless the operator lists the registry in LID_REGISTRY_HOST_CREDENTIALS`,
    );
    expect(registry.seen.length).toBeGreaterThan(0);
    expect(registry.seen.map((r) => r.authorization)).toEqual(registry.seen.map(() => undefined));

    // Another registry listed does not count.
    registry.seen.length = 0;
    const other = jobAcquirer({ LID_REGISTRY_HOST_CREDENTIALS: '127.0.0.1:1,quay.io' });
    expect(await acquire(other, `${registry.host}/test/app:v1`)).toMatchObject({ code: 'invalid_spec' });
    expect(registry.seen.some((r) => r.authorization)).toBe(false);

    // Control: listed, the same pull sends the login and succeeds.
    registry.seen.length = 0;
    const listed = jobAcquirer({ LID_REGISTRY_HOST_CREDENTIALS: registry.host });
    expect(await acquire(listed, `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(registry.seen.map((r) => r.authorization)).toContain(basicHeader);
  });

  it('sends no host login to the token server of a registry it does not list', async () => {
    const tokens = await startTokenServer('127.0.0.1');
    const registry = await startHostileRegistry(image, { tokenRealm: `http://${tokens.host}/token` });
    servers.push(tokens, registry);
    login([registry.host]);

    // The token server here hands out tokens to anyone, so the pull works either way; what differs is what it got.
    expect(await acquire(jobAcquirer({}), `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(tokens.seen).toHaveLength(1);
    expect(tokens.seen[0]!.authorization).toBeUndefined();
    expect(tokens.seen[0]!.url).not.toContain('account=');

    const listed = jobAcquirer({ LID_REGISTRY_HOST_CREDENTIALS: registry.host });
    expect(await acquire(listed, `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(tokens.seen[1]!.authorization).toBe(basicHeader);
  });
});

/** Everything an acquirer told its hooks, in order. */
function recorder() {
  const events: string[] = [];
  return {
    events,
    hooks: {
      onCacheHit: () => events.push('hit'),
      onCacheMiss: () => events.push('miss'),
      onFetch: (name: string, how: string) => events.push(`${how} ${name}`),
    },
  };
}

describe('the operator’s acquirer (lid sandbox run --image) and a job’s, on the same registry', () => {
  it('pulls with the operator’s rights: loopback and the host login, where a job’s pull is refused', async () => {
    const registry = await startHostileRegistry(image, { basic: LOGIN });
    servers.push(registry);
    login([registry.host]);
    const config = loadConfig({}); // no LID_ALLOW_PRIVATE_EGRESS, no LID_REGISTRY_HOST_CREDENTIALS
    const name = `${registry.host}/test/app:v1`;
    const test = { plainHttp: true, authFiles: { env: {}, homedir: home } };

    const job = new ImageAcquirer(ImageStore.open(path.join(tmp, `store-${++stores}`)), {
      pulls: { ...tenantPulls(config), ...test },
    });
    const refused = await acquire(job, name);
    expect(refused).toMatchObject({ code: 'invalid_spec' });
    expect((refused as Error).message).toMatch(/a loopback address, on a tenant's behalf.*LID_ALLOW_PRIVATE_EGRESS/);
    expect(registry.seen).toEqual([]);

    const seen = recorder();
    const operator = new ImageAcquirer(ImageStore.open(path.join(tmp, `store-${++stores}`)), {
      pulls: { ...operatorPulls(config), ...test },
      ...seen.hooks,
    });
    const held = await operator.acquire(name);
    held.release();
    expect(held.image).toMatchObject({ name, manifestDigest: image.manifest.digest });
    expect(registry.seen.map((r) => r.authorization)).toContain(basicHeader);
    expect(seen.events).toEqual(['miss', `pull ${name}`]);
  });

  it('fetches a name once when many ask at the same time, then serves it from the store', async () => {
    const registry = await startHostileRegistry(image);
    servers.push(registry);
    const seen = recorder();
    const store = ImageStore.open(path.join(tmp, `store-${++stores}`));
    const acquirer = new ImageAcquirer(store, {
      pulls: { ...tenantPulls(loadConfig({ LID_ALLOW_PRIVATE_EGRESS: '127.0.0.1/32' })), plainHttp: true },
      ...seen.hooks,
    });
    const name = `${registry.host}/test/app:v1`;
    const all = await Promise.all(Array.from({ length: 5 }, () => acquirer.acquire(name)));
    for (const held of all) held.release();
    expect(new Set(all.map((h) => h.image.manifestDigest))).toEqual(new Set([image.manifest.digest]));
    const manifestGets = registry.seen.filter((r) => r.url.includes('/manifests/'));
    expect(manifestGets).toHaveLength(1);
    expect(seen.events.sort()).toEqual(['miss', 'miss', 'miss', 'miss', 'miss', `pull ${name}`]);
    (await acquirer.acquire(name)).release();
    expect(seen.events.at(-1)).toBe('hit');
    expect(registry.seen.filter((r) => r.url.includes('/manifests/'))).toHaveLength(1);
    expect(acquirer.storedBytes()).toBe(image.config.size + image.layer.size);
  });

  it('builds a recipe image once on first use, and names what it has when a name has no source', async () => {
    const seen = recorder();
    const store = ImageStore.open(path.join(tmp, `store-${++stores}`));
    const acquirer = new ImageAcquirer(store, { pulls: tenantPulls(loadConfig({})), ...seen.hooks });
    const [a, b] = await Promise.all([acquirer.acquire('busybox'), acquirer.acquire('busybox:latest')]);
    a.release();
    b.release();
    expect(a.image.name).toBe('busybox:latest');
    expect(b.image.manifestDigest).toBe(a.image.manifestDigest);
    expect(store.manifest(a.image.manifestDigest).mediaType).toBe(MEDIA.ociManifest);
    expect(seen.events.sort()).toEqual(['build busybox', 'miss', 'miss']);
    expect(acquirer.available()).toEqual(expect.arrayContaining(['busybox:latest', 'python:latest']));

    const missing = await acquire(acquirer, 'no/such:1');
    expect(missing).toMatchObject({ code: 'not_found' });
    expect((missing as Error).message).toMatch(
      /^no image named no\/such:1 on this node, and no recipe or registry to get it from \(available: .*busybox:latest/,
    );
  }, 300_000);
});
