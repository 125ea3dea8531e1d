// Tenants and their API keys, in Redis:
//   lid:tenant:<name>          the tenant as JSON {name, concurrency, ratePerSec, maxQueued, the six limit ceilings
//                              (maxTimeoutMs ... maxDiskBytes), createdAt, revokedAt|null, keyHash, signingVersion,
//                              signingNonce}; workers read `concurrency` and the signing fields
//   lid:apikey:<sha256 of key> -> the tenant's name
//   lid:tenants                a SET of every tenant name, for `list`
// A key is shown once, at create, and only its SHA-256 is stored: a leaked Redis dump does not let anyone in.
// The callback signing secret is not stored at all: it derives from a server key outside Redis and the record's
// signingVersion and signingNonce (common/callback-secret.ts), and is shown at create and at each rotation.
import crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { callbackSecret } from '../common/callback-secret.js';
import { LidError } from '../common/errors.js';
import { LIMIT_BOUNDS } from '../common/run-spec.js';
import { problemsOf } from './api-error.js';

const tenantKey = (name: string) => `lid:tenant:${name}`;
const apiKeyKey = (hash: string) => `lid:apikey:${hash}`;
const TENANTS_SET = 'lid:tenants';

export const TENANT_NAME = /^[a-z0-9-]{1,63}$/;
/** `lid_` + 32 random bytes in base64url (43 characters). */
const API_KEY = /^lid_[A-Za-z0-9_-]{43}$/;

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
 * again; an operator raises a tenant's ceilings with `lid tenants update`.
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
});

export interface Tenant extends TenantSettings {
  name: string;
  createdAt: string;
  revokedAt: string | null;
  /** Which signing secret is current: 1 at create, one more at each rotation (0: made before secrets existed). */
  signingVersion: number;
}

/**
 * What is stored: the tenant plus the hash of its key, so that revoke can drop the key's mapping, and the nonce its
 * signing secret derives from (not secret by itself: without the server key it yields nothing).
 */
interface StoredTenant extends Tenant {
  keyHash: string;
  signingNonce: string;
}

const hashKey = (key: string) => crypto.createHash('sha256').update(key).digest('hex');
const newNonce = () => crypto.randomBytes(16).toString('hex');

function publicView({ keyHash: _keyHash, signingNonce: _nonce, ...tenant }: StoredTenant): Tenant {
  return tenant;
}

/** The settings given (undefined ones left out, so they never overwrite a default or a current value). */
function validSettings(input: Partial<TenantSettings>): Partial<TenantSettings> {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const parsed = TenantSettingsSchema.safeParse(defined);
  if (parsed.success) return parsed.data;
  const problems = problemsOf(parsed.error.issues);
  throw new LidError('invalid_spec', problems.map((p) => `${p.path}: ${p.message}`).join('; '), { problems });
}

function validName(name: string): void {
  if (!TENANT_NAME.test(name)) {
    throw new LidError('invalid_spec', `tenant name "${name}" must be 1 to 63 lowercase letters, digits or "-"`);
  }
}

export interface TenantStoreOptions {
  /** The server key callback secrets derive from (common/callback-secret.ts): needed to show a tenant its secret. */
  signingKey?: Buffer;
}

const REPLACE_IF_SAME = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;

/**
 * A stored record with today's defaults under it: records written before a setting existed (the four newer ceilings,
 * the signing version) read as if made with the defaults, and their secret is version 0 until rotated.
 */
function withDefaults(stored: Partial<StoredTenant>): StoredTenant {
  return { ...TENANT_DEFAULTS, signingVersion: 0, signingNonce: '', ...stored } as StoredTenant;
}

const secretOf = (key: Buffer, t: StoredTenant) => callbackSecret(key, t.name, t.signingVersion, t.signingNonce);

export class TenantStore {
  constructor(
    private readonly redis: Redis,
    private readonly opts: TenantStoreOptions = {},
  ) {}

  /**
   * Creates a tenant and its API key; the key is returned here and never again. So is the callback signing secret,
   * when this store was given the server key (rotateSigningSecret shows a new one later).
   */
  async create(
    name: string,
    settings: Partial<TenantSettings> = {},
  ): Promise<{ tenant: Tenant; apiKey: string; signingSecret?: string }> {
    validName(name);
    const apiKey = `lid_${crypto.randomBytes(32).toString('base64url')}`;
    const stored: StoredTenant = {
      name,
      ...TENANT_DEFAULTS,
      ...validSettings(settings),
      createdAt: new Date().toISOString(),
      revokedAt: null,
      signingVersion: 1,
      keyHash: hashKey(apiKey),
      signingNonce: newNonce(),
    };
    // NX claims the name atomically: two admins creating the same tenant cannot both get a key for it.
    if (!(await this.redis.set(tenantKey(name), JSON.stringify(stored), 'NX'))) {
      throw new LidError('invalid_spec', `tenant "${name}" already exists`);
    }
    await this.redis.multi().set(apiKeyKey(stored.keyHash), name).sadd(TENANTS_SET, name).exec();
    const signingSecret = this.opts.signingKey && secretOf(this.opts.signingKey, stored);
    return { tenant: publicView(stored), apiKey, ...(signingSecret ? { signingSecret } : {}) };
  }

  async get(name: string): Promise<Tenant | null> {
    const stored = await this.read(name);
    return stored && publicView(stored);
  }

  async list(): Promise<Tenant[]> {
    const names = (await this.redis.smembers(TENANTS_SET)).sort();
    const tenants = await Promise.all(names.map((n) => this.get(n)));
    return tenants.filter((t): t is Tenant => t !== null);
  }

  /**
   * Changes some settings. Last writer wins between two admins updating the same tenant at once, which is fine for
   * an operator's command; the gateway and workers read the record on every use, so a change applies at once.
   */
  async update(name: string, change: Partial<TenantSettings>): Promise<Tenant> {
    const stored = await this.mustRead(name);
    const next: StoredTenant = { ...stored, ...validSettings(change) };
    await this.redis.set(tenantKey(name), JSON.stringify(next), 'XX');
    return publicView(next);
  }

  /**
   * Replaces the tenant's callback signing secret and returns the new one (shown only here). Callbacks are signed
   * with the new secret from their next delivery attempt on, including retries of ones queued before; the old one
   * stops verifying at once (no grace period on Lid's side: a receiver that wants one accepts both secrets until it
   * has switched, and deliveries it refused meanwhile are retried with backoff for about two minutes).
   */
  async rotateSigningSecret(name: string): Promise<{ tenant: Tenant; signingSecret: string }> {
    const key = this.opts.signingKey;
    if (!key) throw new LidError('internal', 'this tenant store was opened without the signing key');
    for (;;) {
      const text = TENANT_NAME.test(name) ? await this.redis.get(tenantKey(name)) : null;
      if (!text) throw new LidError('not_found', `no tenant "${name}"`);
      const stored = withDefaults(JSON.parse(text) as Partial<StoredTenant>);
      const next: StoredTenant = { ...stored, signingVersion: stored.signingVersion + 1, signingNonce: newNonce() };
      // Compare-and-set, so two rotations at once cannot both print a secret when only the last one holds.
      if ((await this.redis.eval(REPLACE_IF_SAME, 1, tenantKey(name), text, JSON.stringify(next))) === 1)
        return { tenant: publicView(next), signingSecret: secretOf(key, next) };
    }
  }

  /** Revokes the tenant's key: it stops working at the next request. Its jobs and records stay. */
  async revoke(name: string): Promise<Tenant> {
    const stored = await this.mustRead(name);
    const next: StoredTenant = { ...stored, revokedAt: stored.revokedAt ?? new Date().toISOString() };
    await this.redis.multi().set(tenantKey(name), JSON.stringify(next), 'XX').del(apiKeyKey(stored.keyHash)).exec();
    return publicView(next);
  }

  /**
   * The tenant a key belongs to, or null (unknown, malformed or revoked). No constant-time comparison is needed:
   * the secret is never compared. Redis looks up the SHA-256 of what was presented, so timing can reveal at most
   * something about a hash, and knowing part of the hash of a 256-bit random key does not help find the key.
   */
  async authenticate(apiKey: string): Promise<Tenant | null> {
    if (!API_KEY.test(apiKey)) return null;
    const name = await this.redis.get(apiKeyKey(hashKey(apiKey)));
    const tenant = name ? await this.get(name) : null;
    // revokedAt is checked too, so a revoke that wrote the record but not yet deleted the key still holds.
    return tenant && tenant.revokedAt === null ? tenant : null;
  }

  private async read(name: string): Promise<StoredTenant | null> {
    if (!TENANT_NAME.test(name)) return null;
    const text = await this.redis.get(tenantKey(name));
    return text ? withDefaults(JSON.parse(text) as Partial<StoredTenant>) : null;
  }

  private async mustRead(name: string): Promise<StoredTenant> {
    const stored = await this.read(name);
    if (!stored) throw new LidError('not_found', `no tenant "${name}"`);
    return stored;
  }
}
