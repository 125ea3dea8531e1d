// The tenant record: what keys.tenant(name) holds, written by the tenant store (gateway/tenants.ts, through
// `lid tenants` and `lid up`) and read by the gateway (authentication, quotas, ceilings) and the workers (the
// tenant's concurrency, its callback signing secret). One schema, read through one function, so every reader sees
// the same defaults for what older records lack: records made before issue 8 have no maxCpus, maxPids,
// maxOutputBytes, maxDiskBytes, signingVersion or signingNonce, and read as if made with today's defaults (their
// signing secret is version 0 until rotated); records made before issue 10 have no network ceiling and read as
// "none": a tenant reaches no network until the operator says so.
//
// Unknown fields are kept, not dropped: a record written by a newer Lid and updated by an older one (a rolling
// upgrade) keeps what the older one does not know.
import crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keys } from './keys.js';
import type { LimitValues } from './limits.js';
import { NETWORK_LEVELS } from './network-policy.js';
import { LIMIT_BOUNDS } from './run-spec.js';
import { parseJsonOrThrow, parseOrThrow } from './validation.js';

export const TENANT_NAME = /^[a-z0-9-]{1,63}$/;

/** The settings a tenant can be given (each optional here: create fills in TENANT_DEFAULTS, update keeps the rest). */
export const TenantSettingsSchema = z
  .strictObject({
    /** Jobs of this tenant that may run at once across all workers (workers enforce it). */
    concurrency: z.number().int().min(1).max(100_000),
    /** Requests per second, with bursts of up to one second's worth. */
    ratePerSec: z.number().positive().max(1_000_000),
    /**
     * Jobs waiting in the queue at once. At most 200,000 so that the fair-share priority (position * 10 + 9) stays
     * below BullMQ's largest priority and is never clamped, which would end fairness for the clamped jobs.
     */
    maxQueued: z.number().int().min(1).max(200_000),
    maxTimeoutMs: z.number().int().min(LIMIT_BOUNDS.timeoutMs[0]).max(LIMIT_BOUNDS.timeoutMs[1]),
    maxMemoryBytes: z.number().int().min(LIMIT_BOUNDS.memoryBytes[0]).max(LIMIT_BOUNDS.memoryBytes[1]),
    maxCpus: z.number().min(LIMIT_BOUNDS.cpus[0]).max(LIMIT_BOUNDS.cpus[1]),
    maxPids: z.number().int().min(LIMIT_BOUNDS.pids[0]).max(LIMIT_BOUNDS.pids[1]),
    maxOutputBytes: z.number().int().min(LIMIT_BOUNDS.outputBytes[0]).max(LIMIT_BOUNDS.outputBytes[1]),
    maxDiskBytes: z.number().int().min(LIMIT_BOUNDS.diskBytes[0]).max(LIMIT_BOUNDS.diskBytes[1]),
    /**
     * The most network its jobs may ask for (common/network-policy.ts): none < allowlist < internet. A sandbox with
     * a network sends packets from the operator's machines, so no tenant has one unless the operator gives it.
     */
    network: z.enum(NETWORK_LEVELS, { error: `must be one of ${NETWORK_LEVELS.join(', ')}` }),
  })
  .partial();
export type TenantSettings = Required<z.output<typeof TenantSettingsSchema>>;

/**
 * A new tenant's settings. The ceilings suit a shared service, where a tenant is anyone holding a key: each is well
 * above the job default (run-spec.ts DEFAULT_LIMITS) so ordinary jobs never meet it, and low enough that one tenant
 * at its concurrency (4 jobs) cannot take a small node: 4 x 1 GiB memory, 4 x 2 CPUs, 4 x 256 tasks (a build with
 * parallel compilers fits; a fork bomb stops at 256), and 16 MiB of output per stream, which the worker holds in
 * memory and Redis keeps about three times over (events, record, final event) for LID_RESULT_TTL. A minute of run
 * time and 1 GiB of scratch disk cover compiling and running a program. The server caps (LID_CAP_*) bound them
 * again; an operator raises a tenant's ceilings with `lid tenants update`. No network: the operator opens it per
 * tenant (`--network allowlist` or `internet`).
 */
export const TENANT_DEFAULTS: Readonly<TenantSettings> = Object.freeze({
  concurrency: 4,
  ratePerSec: 50,
  maxQueued: 10_000,
  maxTimeoutMs: 60_000,
  maxMemoryBytes: 1024 ** 3,
  maxCpus: 2,
  maxPids: 256,
  maxOutputBytes: 16 * 1024 ** 2,
  maxDiskBytes: 1024 ** 3,
  network: 'none',
});

const setting = TenantSettingsSchema.required().shape;
const D = TENANT_DEFAULTS;

/**
 * The stored record: the tenant's settings, its lifecycle, the hash of its API key (so that revoke can drop the
 * key's mapping) and what its callback signing secret derives from (common/callback-secret.ts; the nonce is not
 * secret by itself: without the server key it yields nothing).
 */
const TenantRecordFields = z.object({
  name: z.string().regex(TENANT_NAME),
  concurrency: setting.concurrency.default(D.concurrency),
  ratePerSec: setting.ratePerSec.default(D.ratePerSec),
  maxQueued: setting.maxQueued.default(D.maxQueued),
  maxTimeoutMs: setting.maxTimeoutMs.default(D.maxTimeoutMs),
  maxMemoryBytes: setting.maxMemoryBytes.default(D.maxMemoryBytes),
  maxCpus: setting.maxCpus.default(D.maxCpus),
  maxPids: setting.maxPids.default(D.maxPids),
  maxOutputBytes: setting.maxOutputBytes.default(D.maxOutputBytes),
  maxDiskBytes: setting.maxDiskBytes.default(D.maxDiskBytes),
  network: setting.network.default(D.network),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
  /** The hex SHA-256 of the tenant's API key (keys.apiKey maps it back to the name). */
  keyHash: z.string(),
  /** Which signing secret is current: 1 at create, one more at each rotation (0: made before secrets existed). */
  signingVersion: z.number().int().min(0).default(0),
  signingNonce: z.string().default(''),
});
/** Loose: fields it does not know are kept (see above), though the type names only the known ones. */
export const TenantRecordSchema = TenantRecordFields.loose();
export type TenantRecord = z.output<typeof TenantRecordFields>;

/**
 * A stored record's text as a TenantRecord, defaults applied. A record that is not JSON or not a tenant record is
 * refused with an error naming its key and what is wrong: Lid wrote it, so it is Lid's (or an operator's) to fix.
 */
export function parseTenantRecord(name: string, text: string): TenantRecord {
  return parseJsonOrThrow(TenantRecordSchema, text, `tenant record ${keys.tenant(name)}`, { code: 'internal' });
}

/** A record as stored, checked against the schema first: nothing writes a record its readers would refuse. */
export function tenantRecordText(record: TenantRecord): string {
  const checked = parseOrThrow(TenantRecordSchema, record, `tenant record ${keys.tenant(record.name)}`, {
    code: 'internal',
  });
  return JSON.stringify(checked);
}

/** The tenant's six ceilings as limit values, for common/limits.ts to hold its jobs under. */
export function ceilingsOfTenant(
  tenant: Omit<TenantSettings, 'concurrency' | 'ratePerSec' | 'maxQueued' | 'network'>,
): LimitValues {
  return {
    timeoutMs: tenant.maxTimeoutMs,
    memoryBytes: tenant.maxMemoryBytes,
    cpus: tenant.maxCpus,
    pids: tenant.maxPids,
    outputBytes: tenant.maxOutputBytes,
    diskBytes: tenant.maxDiskBytes,
  };
}

/** A fresh nonce for a tenant's signing secret: a new one at create and at each rotation. */
export const newSigningNonce = (): string => crypto.randomBytes(16).toString('hex');

/** A new tenant's record: today's defaults under the settings given, signing secret version 1. */
export function newTenantRecord(name: string, settings: Partial<TenantSettings>, keyHash: string): TenantRecord {
  return {
    name,
    ...TENANT_DEFAULTS,
    ...settings,
    createdAt: new Date().toISOString(),
    revokedAt: null,
    keyHash,
    signingVersion: 1,
    signingNonce: newSigningNonce(),
  };
}

/** The tenant's record, or null when there is no tenant of that name. */
export async function readTenantRecord(redis: Redis, name: string): Promise<TenantRecord | null> {
  if (!TENANT_NAME.test(name)) return null;
  const text = await redis.get(keys.tenant(name));
  return text === null ? null : parseTenantRecord(name, text);
}
