// Tenants and their API keys, in Redis (common/keys.ts):
//   keys.tenant(name)          the tenant record (common/tenant-record.ts: its schema and the defaults old records
//                              read with); workers read `concurrency` and the signing fields
//   keys.apiKey(sha256 of key) -> the tenant's name
//   keys.tenants               a SET of every tenant name, for `list`
// A key is shown once, at create, and only its SHA-256 is stored: a leaked Redis dump does not let anyone in.
// The callback signing secret is not stored at all: it derives from a server key outside Redis and the record's
// signingVersion and signingNonce (common/callback-secret.ts), and is shown at create and at each rotation.
import crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { callbackSecret } from '../common/callback-secret.js';
import { LidError } from '../common/errors.js';
import { keys } from '../common/keys.js';
import {
  newSigningNonce,
  newTenantRecord,
  parseTenantRecord,
  readTenantRecord,
  TENANT_NAME,
  type TenantRecord,
  tenantRecordText,
  type TenantSettings,
  TenantSettingsSchema,
} from '../common/tenant-record.js';
import { parseOrThrow } from '../common/validation.js';

/** `lid_` + 32 random bytes in base64url (43 characters). */
const API_KEY = /^lid_[A-Za-z0-9_-]{43}$/;

/** A tenant as the API and `lid tenants` show it: its record without the key hash and the signing nonce. */
export type Tenant = Omit<TenantRecord, 'keyHash' | 'signingNonce'>;

const hashKey = (key: string) => crypto.createHash('sha256').update(key).digest('hex');

function publicView({ keyHash: _keyHash, signingNonce: _nonce, ...tenant }: TenantRecord): Tenant {
  return tenant;
}

/** The settings given (undefined ones left out, so they never overwrite a default or a current value). */
function validSettings(input: Partial<TenantSettings>): Partial<TenantSettings> {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  return parseOrThrow(TenantSettingsSchema, defined, 'tenant settings');
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

const secretOf = (key: Buffer, t: TenantRecord) => callbackSecret(key, t.name, t.signingVersion, t.signingNonce);

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
    const stored = newTenantRecord(name, validSettings(settings), hashKey(apiKey));
    // NX claims the name atomically: two admins creating the same tenant cannot both get a key for it.
    if (!(await this.redis.set(keys.tenant(name), tenantRecordText(stored), 'NX'))) {
      throw new LidError('invalid_spec', `tenant "${name}" already exists`);
    }
    await this.redis.multi().set(keys.apiKey(stored.keyHash), name).sadd(keys.tenants, name).exec();
    const signingSecret = this.opts.signingKey && secretOf(this.opts.signingKey, stored);
    return { tenant: publicView(stored), apiKey, ...(signingSecret ? { signingSecret } : {}) };
  }

  async get(name: string): Promise<Tenant | null> {
    const stored = await readTenantRecord(this.redis, name);
    return stored && publicView(stored);
  }

  async list(): Promise<Tenant[]> {
    const names = (await this.redis.smembers(keys.tenants)).sort();
    const tenants = await Promise.all(names.map((n) => this.get(n)));
    return tenants.filter((t): t is Tenant => t !== null);
  }

  /**
   * Changes some settings. Last writer wins between two admins updating the same tenant at once, which is fine for
   * an operator's command; the gateway and workers read the record on every use, so a change applies at once.
   */
  async update(name: string, change: Partial<TenantSettings>): Promise<Tenant> {
    const stored = await this.mustRead(name);
    const next: TenantRecord = { ...stored, ...validSettings(change) };
    await this.redis.set(keys.tenant(name), tenantRecordText(next), 'XX');
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
      const text = TENANT_NAME.test(name) ? await this.redis.get(keys.tenant(name)) : null;
      if (!text) throw new LidError('not_found', `no tenant "${name}"`);
      const stored = parseTenantRecord(name, text);
      const next: TenantRecord = {
        ...stored,
        signingVersion: stored.signingVersion + 1,
        signingNonce: newSigningNonce(),
      };
      // Compare-and-set, so two rotations at once cannot both print a secret when only the last one holds.
      if ((await this.redis.eval(REPLACE_IF_SAME, 1, keys.tenant(name), text, tenantRecordText(next))) === 1)
        return { tenant: publicView(next), signingSecret: secretOf(key, next) };
    }
  }

  /** Revokes the tenant's key: it stops working at the next request. Its jobs and records stay. */
  async revoke(name: string): Promise<Tenant> {
    const stored = await this.mustRead(name);
    const next: TenantRecord = { ...stored, revokedAt: stored.revokedAt ?? new Date().toISOString() };
    await this.redis
      .multi()
      .set(keys.tenant(name), tenantRecordText(next), 'XX')
      .del(keys.apiKey(stored.keyHash))
      .exec();
    return publicView(next);
  }

  /**
   * The tenant a key belongs to, or null (unknown, malformed or revoked). No constant-time comparison is needed:
   * the secret is never compared. Redis looks up the SHA-256 of what was presented, so timing can reveal at most
   * something about a hash, and knowing part of the hash of a 256-bit random key does not help find the key.
   */
  async authenticate(apiKey: string): Promise<Tenant | null> {
    if (!API_KEY.test(apiKey)) return null;
    const name = await this.redis.get(keys.apiKey(hashKey(apiKey)));
    const tenant = name ? await this.get(name) : null;
    // revokedAt is checked too, so a revoke that wrote the record but not yet deleted the key still holds.
    return tenant && tenant.revokedAt === null ? tenant : null;
  }

  private async mustRead(name: string): Promise<TenantRecord> {
    const stored = await readTenantRecord(this.redis, name);
    if (!stored) throw new LidError('not_found', `no tenant "${name}"`);
    return stored;
  }
}
