// Pulls a job's image the way a worker does (ImageProvider with the options tenantPullOptions builds from config)
// from registries on loopback that demand credentials, while the host's auth file holds a login for them: the
// host's login is sent only when LID_REGISTRY_HOST_CREDENTIALS lists the registry. Each registry (and token
// server) records the Authorization headers it received.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import {
  startHostileRegistry,
  startTokenServer,
  type TestImage,
  type TestServer,
  testImage,
} from '../test/hostile-registry.js';
import { ImageStore } from '../images/store.js';
import { ImageProvider, tenantPullOptions } from './image-provider.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-image-provider-'));
const home = path.join(tmp, 'home'); // the operator's home, with a docker login for the test registries
const LOGIN = { username: 'operator', password: 'host-secret' };
const basicHeader = `Basic ${Buffer.from(`${LOGIN.username}:${LOGIN.password}`).toString('base64')}`;
const servers: TestServer[] = [];
let image: TestImage;
let stores = 0;

function provider(env: Record<string, string>): ImageProvider {
  const config = loadConfig({ LID_ALLOW_PRIVATE_EGRESS: '127.0.0.1/32', ...env });
  const store = ImageStore.open(path.join(tmp, `store-${++stores}`));
  // Loopback registries speak plain HTTP, and the auth files are the test's, not the machine's.
  return new ImageProvider(store, {
    pulls: { ...tenantPullOptions(config), plainHttp: true, authFiles: { env: {}, homedir: home } },
  });
}

async function acquire(p: ImageProvider, name: string): Promise<unknown> {
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

    const refused = await acquire(provider({}), `${registry.host}/test/app:v1`);
    expect(isLidError(refused) && refused.code).toBe('invalid_spec');
    expect((refused as Error).message).toContain(
      `registry ${registry.host} needs credentials to pull test/app: Lid pulls images for jobs without the host's registry logins unless the operator lists the registry in LID_REGISTRY_HOST_CREDENTIALS`,
    );
    expect(registry.seen.length).toBeGreaterThan(0);
    expect(registry.seen.map((r) => r.authorization)).toEqual(registry.seen.map(() => undefined));

    // Another registry listed does not count.
    registry.seen.length = 0;
    const other = provider({ LID_REGISTRY_HOST_CREDENTIALS: '127.0.0.1:1,quay.io' });
    expect(await acquire(other, `${registry.host}/test/app:v1`)).toMatchObject({ code: 'invalid_spec' });
    expect(registry.seen.some((r) => r.authorization)).toBe(false);

    // Control: listed, the same pull sends the login and succeeds.
    registry.seen.length = 0;
    const listed = provider({ LID_REGISTRY_HOST_CREDENTIALS: registry.host });
    expect(await acquire(listed, `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(registry.seen.map((r) => r.authorization)).toContain(basicHeader);
  });

  it('sends no host login to the token server of a registry it does not list', async () => {
    const tokens = await startTokenServer('127.0.0.1');
    const registry = await startHostileRegistry(image, { tokenRealm: `http://${tokens.host}/token` });
    servers.push(tokens, registry);
    login([registry.host]);

    // The token server here hands out tokens to anyone, so the pull works either way; what differs is what it got.
    expect(await acquire(provider({}), `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(tokens.seen).toHaveLength(1);
    expect(tokens.seen[0]!.authorization).toBeUndefined();
    expect(tokens.seen[0]!.url).not.toContain('account=');

    const listed = provider({ LID_REGISTRY_HOST_CREDENTIALS: registry.host });
    expect(await acquire(listed, `${registry.host}/test/app:v1`)).toBeUndefined();
    expect(tokens.seen[1]!.authorization).toBe(basicHeader);
  });
});
