// The Redis layout: every key, channel and queue name from common/keys.ts. The literal names are asserted here on
// purpose: they are what a Lid of another version, an operator's redis-cli and a queue-driven producer in another
// language meet in the same Redis, so changing one is a migration, not a refactor.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { CHANNELS, connectionName, keys, PREFIX, QUEUES } from './keys.js';

type KeyFamily = string | ((...ids: string[]) => string);
const families = Object.entries(keys) as [string, KeyFamily][];
const spell = (family: KeyFamily, ids: string[]) => (typeof family === 'string' ? family : family(...ids));

/** Ids as Lid puts them into keys: job_<base64url>, bat_..., tenant names, hex hashes and trace ids; never ":". */
const id = fc.stringMatching(/^[A-Za-z0-9_.+/=-]{1,40}$/);

it('spells the layout Lid has always used', () => {
  expect(PREFIX).toBe('lid');
  expect(QUEUES).toEqual({ prefix: 'lid', jobs: 'lid-jobs', callbacks: 'lid-callbacks' });
  expect(CHANNELS).toEqual({ cancel: 'lid:cancel', final: 'lid:final', events: 'lid:events' });
  expect(Object.fromEntries(families.map(([name, family]) => [name, spell(family, ['A', 'B'])]))).toEqual({
    job: 'lid:job:A',
    jobEvents: 'lid:job:A:events',
    jobCancel: 'lid:job:A:cancel',
    jobDequeued: 'lid:job:A:dequeued',
    idempotency: 'lid:idem:A:B',
    batchIdempotency: 'lid:idem:A:batch:B',
    tenant: 'lid:tenant:A',
    tenantQueued: 'lid:tenant:A:queued',
    tenantRate: 'lid:tenant:A:rate',
    tenantRunning: 'lid:tenant:A:running',
    apiKey: 'lid:apikey:A',
    tenants: 'lid:tenants',
    batch: 'lid:batch:A',
    batchEnded: 'lid:batch:A:ended',
    trace: 'lid:trace:A',
    images: 'lid:images',
    workers: 'lid:workers',
    worker: 'lid:worker:A',
    running: 'lid:running',
    recent: 'lid:recent',
  });
  expect(connectionName('gateway')).toBe('lid:gateway');
});

it('starts every key and channel with lid:, and keeps them apart from the keys BullMQ makes for the queues', () => {
  const queueKeyPrefixes = [QUEUES.jobs, QUEUES.callbacks].map((q) => `${QUEUES.prefix}:${q}:`);
  fc.assert(
    fc.property(fc.array(id, { minLength: 2, maxLength: 2 }), (ids) => {
      for (const name of [...families.map(([, family]) => spell(family, ids)), ...Object.values(CHANNELS)]) {
        expect(name.startsWith(`${PREFIX}:`), name).toBe(true);
        for (const queuePrefix of queueKeyPrefixes) expect(name.startsWith(queuePrefix), name).toBe(false);
      }
    }),
  );
});

it('never spells the same key for two families, or for two different ids of one family', () => {
  const spelled = (ids: string[]) =>
    families.map(([name, family]) => ({ name, ids: typeof family === 'string' ? [] : ids.slice(0, family.length) }));
  fc.assert(
    fc.property(fc.array(id, { minLength: 2, maxLength: 2 }), fc.array(id, { minLength: 2, maxLength: 2 }), (a, b) => {
      const all = [...spelled(a), ...spelled(b)];
      const seen = new Map<string, string>();
      for (const { name, ids } of all) {
        const key = spell(keys[name as keyof typeof keys] as KeyFamily, ids);
        const who = `${name}(${ids.join(', ')})`;
        const before = seen.get(key);
        if (before !== undefined) expect(before, `${key} is spelled by ${before} and by ${who}`).toBe(who);
        seen.set(key, who);
      }
      for (const channel of Object.values(CHANNELS)) expect(seen.has(channel), channel).toBe(false);
    }),
  );
});
