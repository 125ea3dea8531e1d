// Who may talk to the embedded Redis. Its AOF and memory hold every job's env, stdin and output and every tenant's
// key hash, so the server admits one user, Lid's own, with a generated password kept in
// LID_DATA_DIR/secrets/redis-password (root, 0600). The password never appears on a command line (/proc/PID/cmdline
// is world-readable): the server reads an ACL file holding only its SHA-256, and clients read the password file.
//
// Lid's user may run everything Lid and BullMQ need (BullMQ's Lua scripts, INFO, CLIENT SETNAME, pub/sub, streams)
// but nothing that would let a stolen connection reconfigure or stop the server, undo this lockdown, or ship the
// data elsewhere. The `default` user (what an unauthenticated client is) is switched off.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { LidError } from '../../common/errors.js';
import { readFileSafely, writeFileSafely } from './redis-service-user.js';

export const REDIS_USER = 'lid';

/**
 * Commands Lid's user may not run, each for a reason: CONFIG (rewrite dir/dbfilename to drop files anywhere the
 * server can write), DEBUG (crash, sleep, reload), MODULE (load native code), SHUTDOWN (stop the service; Lid stops
 * the server with SIGTERM), ACL (grant itself back the rest; WHOAMI stays), REPLICAOF/SLAVEOF (replace the data
 * with a hostile master's), SYNC/PSYNC (act as a replica: a full copy of the data), FAILOVER, MIGRATE (copy keys
 * to another server).
 */
export const DENIED_COMMANDS = [
  'config',
  'debug',
  'module',
  'shutdown',
  'acl',
  'replicaof',
  'slaveof',
  'sync',
  'psync',
  'failover',
  'migrate',
] as const;

/** The ACL file the server loads: `default` off, Lid's user on with the password's hash and the denials above. */
export function aclFileContent(password: string): string {
  const hash = crypto.createHash('sha256').update(password).digest('hex');
  const rules = ['on', `#${hash}`, '~*', '&*', '+@all', ...DENIED_COMMANDS.map((c) => `-${c}`), '+acl|whoami'];
  // `default` keeps all permissions while off: no client can be it (an unauthenticated one gets NOAUTH, and AUTH as
  // an off user fails), but Redis 7.0 checks the MULTI/EXEC blocks it replays from the AOF at start against it, and
  // a `default` without permissions silently drops every transaction BullMQ wrote (queued jobs lost on restart).
  return `user default off ~* &* +@all\nuser ${REDIS_USER} ${rules.join(' ')}\n`;
}

/** The password kept in `file`, or null when there is none yet (it is made when the server is first started). */
export function readPassword(file: string): string | null {
  const text = readFileSafely(file)?.trim();
  return text && /^[0-9a-f]{64}$/.test(text) ? text : null;
}

/**
 * The password in `file`, made (256 random bits) when missing or unreadable; the file is kept at 0600, owned by
 * whoever runs Lid (root). Called under the embedded Redis's start lock, before the server starts.
 */
export function ensurePassword(file: string): string {
  const st = fs.existsSync(file) ? fs.lstatSync(file) : null;
  if (st && !st.isFile()) throw new LidError('setup_failed', `${file} must be a regular file, not a link`);
  const uid = process.getuid?.() ?? st?.uid;
  if (st && ((st.mode & 0o777) !== 0o600 || st.uid !== uid)) {
    fs.chownSync(file, uid!, process.getgid?.() ?? st.gid);
    fs.chmodSync(file, 0o600);
  }
  const existing = readPassword(file);
  if (existing) return existing;
  const password = crypto.randomBytes(32).toString('hex');
  writeFileSafely(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/** redis://lid:<password>@127.0.0.1:<port>: what every Lid client connects with. */
export function urlWithCredentials(port: number, password: string): string {
  return `redis://${REDIS_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
}
