// Who the embedded Redis runs as, and the directories it lives in. A redis-server running as root would hand any
// flaw in it (or in a module someone loads) the whole machine, so when Lid runs as root the server runs as an
// unprivileged system user: Debian's `redis` (the redis-server package creates it), or one Lid creates with the same
// name when the binary came from elsewhere. Its directory LID_DATA_DIR/redis is owned by that user, mode 0700; the
// AOF in it holds every job's input and output. LID_DATA_DIR itself is root's, mode 0711 (traverse only).
//
// Root keeps writing a few files into that user's directory (the generated config, the ACL file, the discovery
// file, the log). Every such write refuses to follow a symlink, so that a compromised redis-server cannot turn one of
// root's writes into an overwrite of /etc/shadow.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LidError } from '../../common/errors.js';

export const SERVICE_USER = 'redis';

export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
}

function run(file: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}${error && !stderr ? error.message : ''}` });
    });
  });
}

/** An /etc/passwd or /etc/group entry through NSS (getent), or null when there is none. */
async function getent(database: 'passwd' | 'group', name: string): Promise<string[] | null> {
  const { ok, output } = await run('getent', [database, name]);
  return ok ? output.trim().split(':') : null;
}

/**
 * The user the embedded Redis runs as: null when Lid does not run as root (it cannot switch users, so the server
 * runs as whoever runs Lid); else the `redis` system user, created when missing.
 */
export async function redisServiceUser(): Promise<ServiceUser | null> {
  if (process.getuid?.() !== 0) return null;
  let entry = await getent('passwd', SERVICE_USER);
  if (!entry) {
    // No shell, no home directory of its own: it only ever runs redis-server. An existing `redis` group (left by a
    // removed package) is reused rather than failing useradd's --user-group.
    const group = (await getent('group', SERVICE_USER)) ? ['--gid', SERVICE_USER] : ['--user-group'];
    const args = ['--system', ...group, '--no-create-home', '--home-dir', '/nonexistent', '--shell'];
    const created = await run('useradd', [...args, '/usr/sbin/nologin', SERVICE_USER]);
    entry = await getent('passwd', SERVICE_USER);
    if (!entry) {
      throw new LidError(
        'setup_failed',
        `the embedded Redis runs as the system user "${SERVICE_USER}", which is missing and could not be created ` +
          `(useradd said: ${created.output.trim() || 'nothing'}); create it with \`useradd --system ` +
          `--user-group --shell /usr/sbin/nologin ${SERVICE_USER}\` or set REDIS_URL`,
      );
    }
  }
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  if (uid === 0) throw new LidError('setup_failed', `the system user "${SERVICE_USER}" has uid 0: refusing to use it`);
  return { name: SERVICE_USER, uid, gid };
}

/** mkdir -p with an exact mode (mkdir's mode passes through the umask), and the owner given. */
function ensureDir(dir: string, mode: number, owner?: { uid: number; gid: number }): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new LidError('setup_failed', `${dir} must be a directory, not a link or a file`);
  if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) fs.chownSync(dir, owner.uid, owner.gid);
  if ((st.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
}

/**
 * Gives a tree to `owner` without following links: directories and single-link files only, since a hard link to a
 * file outside the tree (/etc/shadow, planted by whoever owned the tree) must never change hands.
 */
function chownTree(dir: string, owner: ServiceUser): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    const st = fs.lstatSync(file);
    if (st.isDirectory()) chownTree(file, owner);
    if (st.isDirectory() || (st.isFile() && st.nlink === 1)) fs.lchownSync(file, owner.uid, owner.gid);
  }
}

/**
 * Lays out LID_DATA_DIR for the embedded Redis: the data directory itself (0711), secrets/ (root, 0700) and redis/
 * (the service user's, 0700). A redis/ directory left by an earlier Lid, whose server ran as root, is handed over
 * with everything in it, so its AOF keeps working after the upgrade.
 */
export function prepareRedisDirs(
  dataDir: string,
  dirs: { redis: string; secrets: string },
  owner: ServiceUser | null,
): void {
  const root = process.getuid?.() === 0 ? { uid: 0, gid: 0 } : undefined;
  if (!fs.existsSync(dataDir)) ensureDir(dataDir, 0o711, root);
  else if (root && fs.statSync(dataDir).uid === 0) fs.chmodSync(dataDir, 0o711);
  ensureDir(dirs.secrets, 0o700, root);
  const before = fs.existsSync(dirs.redis) ? fs.lstatSync(dirs.redis) : null;
  ensureDir(dirs.redis, 0o700, owner ?? undefined);
  if (owner && before && before.uid !== owner.uid) chownTree(dirs.redis, owner);
}

/**
 * Writes a file in a directory another user may own: a fresh temporary file (O_EXCL, so never through a link an
 * attacker placed), chowned and moved into place (rename replaces a link; it never writes through it).
 */
export function writeFileSafely(
  file: string,
  content: string,
  opts: { mode?: number; owner?: ServiceUser | null } = {},
): void {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, opts.mode ?? 0o600);
  try {
    fs.writeFileSync(fd, content);
    if (opts.owner) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid);
    fs.fchmodSync(fd, opts.mode ?? 0o600);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Reads a small regular file without following a link; null when it is missing, a link, or larger than maxBytes. */
export function readFileSafely(file: string, maxBytes = 64 * 1024): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return null;
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** Opens a log file for appending without following a link (the server's stdout and stderr go there). */
export function openLogSafely(file: string): number {
  const flags = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;
  return fs.openSync(file, flags, 0o600);
}
