// The development tenant `lid up` makes: its settings are valid tenant settings (stored through the tenant store in
// a real Redis), it may use the whole machine up to the server's caps, and it has the internet, so that a new user
// can try `network` at once while every other tenant starts with none.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../common/config.js';
import { serverCaps } from '../../common/limits.js';
import { connectRedis } from '../../common/redis.js';
import { TenantStore } from '../../gateway/tenants.js';
import { startTestRedis, type TestRedis } from '../../test/redis-server.js';
import { DEV_TENANT, devTenantSettings } from './dev-tenant.js';

let server: TestRedis;
beforeAll(async () => {
  server = await startTestRedis();
});
afterAll(() => server?.stop());

it('is stored with the internet and ceilings at the server caps; another tenant has no network', async () => {
  const config = loadConfig({ LID_CAP_PIDS: '300' });
  const redis = connectRedis(server.url, 'test');
  try {
    const store = new TenantStore(redis);
    const { tenant } = await store.create(DEV_TENANT, devTenantSettings(config));
    expect(tenant).toMatchObject({ name: 'dev', network: 'internet', maxPids: 300 });
    expect(tenant.maxMemoryBytes).toBe(serverCaps(config).memoryBytes);
    expect((await store.get(DEV_TENANT))?.network).toBe('internet');
    expect((await store.create('other')).tenant.network).toBe('none');
  } finally {
    redis.disconnect();
  }
});
