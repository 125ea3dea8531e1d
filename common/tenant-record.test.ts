// The stored tenant record, as every reader sees it: records from before issues 8 and 10 read with today's defaults
// (no network for a record that never had a network ceiling),
// whatever Lid does not know is kept, and a record that is not a tenant record is refused with an error naming
// its key and the field.
import { expect, it } from 'vitest';
import { isLidError } from './errors.js';
import {
  newTenantRecord,
  parseTenantRecord,
  TENANT_DEFAULTS,
  type TenantRecord,
  TenantRecordSchema,
  tenantRecordText,
} from './tenant-record.js';
import { problemsIn } from './validation.js';

/** A record as the first Lid wrote it: five settings, no newer ceilings, no signing secret. */
const FIRST = {
  name: 'elder',
  concurrency: 2,
  ratePerSec: 9,
  maxQueued: 10,
  maxTimeoutMs: 5000,
  maxMemoryBytes: 64 * 1024 ** 2,
  createdAt: '2026-01-01T00:00:00.000Z',
  revokedAt: null,
  keyHash: 'ab12',
};

const refusal = (name: string, text: string) => {
  try {
    parseTenantRecord(name, text);
  } catch (e) {
    return e;
  }
  throw new Error('the record was accepted');
};

it('reads a record from before the newer ceilings, signing secrets and network with their defaults', () => {
  expect(parseTenantRecord('elder', JSON.stringify(FIRST))).toEqual({
    ...FIRST,
    maxCpus: TENANT_DEFAULTS.maxCpus,
    maxPids: TENANT_DEFAULTS.maxPids,
    maxOutputBytes: TENANT_DEFAULTS.maxOutputBytes,
    maxDiskBytes: TENANT_DEFAULTS.maxDiskBytes,
    network: 'none',
    signingVersion: 0,
    signingNonce: '',
  });
});

it('keeps a network ceiling it is given, and refuses one that is not a level', () => {
  expect(TENANT_DEFAULTS.network).toBe('none');
  const open = newTenantRecord('acme', { network: 'allowlist' }, 'cd34');
  expect(parseTenantRecord('acme', tenantRecordText(open)).network).toBe('allowlist');
  const bad = refusal('acme', JSON.stringify({ ...FIRST, name: 'acme', network: 'everything' }));
  expect(problemsIn(bad)).toEqual([{ path: 'network', message: 'must be one of none, allowlist, internet' }]);
});

it('reads back what it writes, and keeps fields a newer Lid added', () => {
  const made = newTenantRecord('acme', { concurrency: 7, maxPids: 64 }, 'cd34');
  expect(made).toMatchObject({ ...TENANT_DEFAULTS, concurrency: 7, maxPids: 64, revokedAt: null, signingVersion: 1 });
  expect(made.signingNonce).toMatch(/^[0-9a-f]{32}$/);
  expect(parseTenantRecord('acme', tenantRecordText(made))).toEqual(made);
  const newer = { ...made, gpuSeconds: 10 } as TenantRecord;
  expect(parseTenantRecord('acme', tenantRecordText(newer))).toMatchObject({ gpuSeconds: 10 });
});

it('refuses a malformed record, naming its key and what is wrong', () => {
  const wrongType = refusal('acme', JSON.stringify({ ...FIRST, name: 'acme', concurrency: 'four' }));
  expect(isLidError(wrongType) && wrongType.code).toBe('internal');
  expect((wrongType as Error).message).toMatch(/^invalid tenant record lid:tenant:acme: concurrency: /);
  expect(problemsIn(wrongType)).toEqual([{ path: 'concurrency', message: expect.any(String) }]);

  const { keyHash: _keyHash, ...keyless } = FIRST;
  expect(problemsIn(refusal('elder', JSON.stringify(keyless)))).toEqual([
    { path: 'keyHash', message: expect.any(String) },
  ]);
  expect((refusal('elder', '{"name": "elder"') as Error).message).toMatch(
    /^invalid tenant record lid:tenant:elder: not JSON: /,
  );
  expect((refusal('elder', '[]') as Error).message).toMatch(/^invalid tenant record lid:tenant:elder: /);
});

it('refuses to write a record its readers would refuse', () => {
  const bad = { ...newTenantRecord('acme', {}, 'cd34'), concurrency: 0 };
  expect(() => tenantRecordText(bad)).toThrow(/^invalid tenant record lid:tenant:acme: concurrency: /);
  expect(TenantRecordSchema.safeParse(bad).success).toBe(false);
});
