// Each tenant's callback signing secret: the key its receiver checks Lid-Signature with. It must not be derivable
// from anything Redis holds (whoever can read Redis must not be able to forge callbacks), so it is derived from a
// server key kept in a root-only file, never stored:
//
//   secret = hex(HMAC-SHA256(serverKey, "lid-callback:" + tenant + ":" + version + ":" + nonce))
//
// version and nonce live in the tenant's record (common/tenant-record.ts). Rotating bumps the version and draws a new
// random nonce, so the old secret stops verifying at once. The version is for people ("secret 3"); the nonce keeps a
// tenant deleted from Redis and made again under the same name from getting the secret its predecessor had. The
// prefix keeps these MACs apart from any other use of the server key, and tenant names cannot hold ":", so no two
// (tenant, version, nonce) give the same message. HMAC, not a hash of key || message: it is the standard keyed PRF.
//
// The server key: 32 random bytes in LID_DATA_DIR/secrets/signing-key (directory 0700, file 0600), made on first use;
// or LID_SIGNING_KEY_FILE, which several nodes share (then it must exist: a node making a key of its own would sign
// with secrets no receiver knows).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { LidConfig } from './config.js';
import { LidError } from './errors.js';
import { privateDataDir } from './private-dir.js';
import { readTenantRecord } from './tenant-record.js';

const KEY_BYTES = 32;
const MAX_KEY_FILE_BYTES = 4096;

export function signingKeyPath(config: LidConfig): string {
  return config.signingKeyFile ?? path.join(path.resolve(config.dataDir), 'secrets', 'signing-key');
}

/** Reads the server key, making the default one when it does not exist yet. */
export function loadSigningKey(config: LidConfig): Buffer {
  const file = signingKeyPath(config);
  if (!config.signingKeyFile && !fs.existsSync(file)) makeKeyFile(config.dataDir, file);
  return readKeyFile(file, config.signingKeyFile ? 'LID_SIGNING_KEY_FILE' : 'the signing key file');
}

/** The secret for one version of a tenant's signing secret. */
export function callbackSecret(serverKey: Buffer, tenant: string, version: number, nonce: string): string {
  return crypto.createHmac('sha256', serverKey).update(`lid-callback:${tenant}:${version}:${nonce}`).digest('hex');
}

/**
 * The tenant's current secret, read from its record in Redis (a record made before secrets existed reads as
 * version 0); null when the tenant does not exist.
 */
export async function currentCallbackSecret(redis: Redis, serverKey: Buffer, tenant: string): Promise<string | null> {
  const record = await readTenantRecord(redis, tenant);
  return record && callbackSecret(serverKey, tenant, record.signingVersion, record.signingNonce);
}

// Written to a private temporary file and hard-linked into place: link fails if another process made the key
// first, and then everyone uses that one, so two processes starting at once never end up with different keys.
function makeKeyFile(dataDir: string, file: string): void {
  privateDataDir(dataDir, 'secrets');
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // whatever the umask
    fs.writeSync(fd, crypto.randomBytes(KEY_BYTES));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function readKeyFile(file: string, what: string): Buffer {
  const refuse = (why: string): never => {
    throw new LidError('setup_failed', `${what} ${file} ${why}`);
  };
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st)
    refuse(
      'does not exist: make it once with `head -c 32 /dev/urandom > FILE && chmod 600 FILE` and give every node the same one',
    );
  if (!st!.isFile()) refuse('is not a regular file');
  if ((st!.mode & 0o077) !== 0)
    refuse(`can be read by other users (mode ${(st!.mode & 0o777).toString(8)}): chmod 600 it`);
  const uid = process.getuid?.();
  if (uid !== undefined && st!.uid !== uid && st!.uid !== 0)
    refuse(`belongs to uid ${st!.uid}, who could replace it: it must belong to root or to this user`);
  const key = fs.readFileSync(file);
  if (key.length < KEY_BYTES || key.length > MAX_KEY_FILE_BYTES)
    refuse(`holds ${key.length} bytes: it needs ${KEY_BYTES} to ${MAX_KEY_FILE_BYTES} (e.g. 32 random bytes)`);
  return key;
}
