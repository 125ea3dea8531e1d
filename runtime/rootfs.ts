// The sandbox's root filesystem, built inside the spawner thread's private mount namespace:
//   tmpfs (size = disk limit) holding upper/ and work/  ->  overlay(lower layers + upper)  ->  /dev  ->  pivot_root.
// Everything here is synchronous (kernel fact 6: async fs calls would run on host threads). Nothing is mounted in
// the host's namespace, so every mount vanishes with the sandbox's last process (kernel fact 9).
// The host writes into the sandbox only here, before the tenant's first instruction, and only into the fresh upper
// directory, never following a path through anything the tenant made.
import fs from 'node:fs';
import path from 'node:path/posix';
import { LidError } from '../common/errors.js';
import { MNT_DETACH, MS } from './flags.js';
import * as sys from './syscalls.js';

export interface SandboxFile {
  path: string;
  content: Uint8Array | string;
  mode: number;
}

export interface RootfsPlan {
  /** Read-only layer directories, bottom first. */
  layers: string[];
  /** Host directory used as the mount point of the private tmpfs (only ever mounted inside private namespaces). */
  mountDir: string;
  diskBytes: number;
  files: SandboxFile[];
  cwd: string;
  uid: number;
  gid: number;
}

const MAX_MOUNT_DATA = 4095; // the kernel copies at most one page of mount options

/** overlayfs options: lowerdir lists the top layer first. Pure; refuses paths overlayfs cannot parse. */
export function overlayOptions(layersBottomFirst: string[], upper: string, work: string): string {
  for (const dir of [...layersBottomFirst, upper, work]) {
    if (/[:,\\]/.test(dir))
      throw new LidError(
        'invalid_spec',
        `layer path ${JSON.stringify(dir)} contains ":", "," or "\\", which overlayfs cannot take`,
      );
  }
  const options = `lowerdir=${[...layersBottomFirst].reverse().join(':')},upperdir=${upper},workdir=${work}`;
  if (options.length > MAX_MOUNT_DATA) {
    throw new LidError(
      'invalid_spec',
      `${layersBottomFirst.length} layers make overlay options of ${options.length} bytes; the kernel takes ${MAX_MOUNT_DATA}`,
    );
  }
  return options;
}

/** The devices a sandbox gets: the usual harmless character devices, each world-readable and -writable. */
export const DEVICES = [
  { name: 'null', major: 1, minor: 3 },
  { name: 'zero', major: 1, minor: 5 },
  { name: 'full', major: 1, minor: 7 },
  { name: 'random', major: 1, minor: 8 },
  { name: 'urandom', major: 1, minor: 9 },
  { name: 'tty', major: 5, minor: 0 },
] as const;

/** Looks a path up in the layers, top first, the way overlayfs would (a whiteout hides what is below it). */
function lowerStat(layersTopFirst: string[], rel: string): fs.Stats | null {
  for (const layer of layersTopFirst) {
    const st = fs.lstatSync(path.join(layer, rel), { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isCharacterDevice() && st.rdev === 0) return null; // overlay whiteout
    return st;
  }
  return null;
}

/**
 * Creates a directory chain in the upper layer. Directories the image already has are copied up with their own
 * owner and mode (so placing /usr/local/x never hands /usr to the job); new ones belong to the job's user.
 */
function ensureUpperDirs(upper: string, layersTopFirst: string[], dir: string, uid: number, gid: number): void {
  let rel = '';
  for (const part of dir.split('/').filter(Boolean)) {
    rel = `${rel}/${part}`;
    const target = upper + rel;
    const inUpper = fs.lstatSync(target, { throwIfNoEntry: false });
    if (inUpper?.isDirectory()) continue;
    const below = lowerStat(layersTopFirst, rel);
    if (below && !below.isDirectory()) {
      throw new LidError(
        'invalid_spec',
        `cannot place a file under ${rel}: the image has a ${below.isSymbolicLink() ? 'symlink' : 'file'} there`,
      );
    }
    fs.mkdirSync(target, { mode: 0o755 });
    if (below) {
      fs.chownSync(target, below.uid, below.gid);
      fs.chmodSync(target, below.mode & 0o7777);
    } else {
      fs.chownSync(target, uid, gid);
    }
  }
}

function placeFiles(upper: string, plan: RootfsPlan): void {
  const layersTopFirst = [...plan.layers].reverse();
  // A private, writable /tmp for every job (it lives in the size-capped upper layer).
  ensureUpperDirs(upper, layersTopFirst, '/tmp', plan.uid, plan.gid);
  fs.chmodSync(`${upper}/tmp`, 0o1777);
  for (const file of plan.files) {
    ensureUpperDirs(upper, layersTopFirst, path.dirname(file.path), plan.uid, plan.gid);
    const below = lowerStat(layersTopFirst, file.path);
    if (below?.isDirectory())
      throw new LidError('invalid_spec', `cannot place a file at ${file.path}: the image has a directory there`);
    const target = upper + file.path;
    // O_EXCL|O_NOFOLLOW: the upper layer is fresh and ours; never write through anything that already exists.
    const fd = fs.openSync(
      target,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      file.mode,
    );
    try {
      fs.writeSync(fd, typeof file.content === 'string' ? Buffer.from(file.content) : file.content);
      fs.fchownSync(fd, plan.uid, plan.gid);
      fs.fchmodSync(fd, file.mode);
    } finally {
      fs.closeSync(fd);
    }
  }
  ensureUpperDirs(upper, layersTopFirst, plan.cwd, plan.uid, plan.gid);
}

function mountDev(root: string, shmBytes: number): void {
  const dev = `${root}/dev`;
  sys.mount('tmpfs', dev, 'tmpfs', MS.NOSUID | MS.NOEXEC, 'size=64k,nr_inodes=64,mode=0755');
  for (const d of DEVICES) {
    sys.mknodChar(`${dev}/${d.name}`, 0o666, d.major, d.minor);
    fs.chmodSync(`${dev}/${d.name}`, 0o666); // mknod applies the umask
  }
  fs.mkdirSync(`${dev}/pts`);
  fs.mkdirSync(`${dev}/shm`);
  sys.mount('devpts', `${dev}/pts`, 'devpts', MS.NOSUID | MS.NOEXEC, 'newinstance,ptmxmode=0666,mode=0620');
  sys.mount('shm', `${dev}/shm`, 'tmpfs', MS.NOSUID | MS.NODEV | MS.NOEXEC, `size=${shmBytes},mode=1777`);
}

/**
 * Builds the root and makes it the calling thread's root. Must run in a fresh private mount namespace; afterwards the
 * thread's root is the sandbox's, until the caller returns to the host's namespace.
 */
export function buildAndEnterRootfs(plan: RootfsPlan): void {
  // Our copies of the host's mounts must never propagate back to the host.
  sys.mount(null, '/', null, MS.REC | MS.PRIVATE);
  const scratch = plan.mountDir;
  sys.mount('tmpfs', scratch, 'tmpfs', MS.NOSUID | MS.NODEV, `size=${plan.diskBytes},mode=0755`);
  const upper = `${scratch}/upper`;
  const work = `${scratch}/work`;
  const root = `${scratch}/root`;
  fs.mkdirSync(upper);
  fs.mkdirSync(work);
  fs.mkdirSync(root);
  placeFiles(upper, plan);
  sys.mount('overlay', root, 'overlay', MS.NOSUID | MS.NODEV, overlayOptions(plan.layers, upper, work));
  for (const dir of ['proc', 'dev']) fs.mkdirSync(`${root}/${dir}`, { recursive: true, mode: 0o755 });
  mountDev(root, Math.min(plan.diskBytes, 64 * 1024 * 1024));
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the sandbox's tree.
  sys.chdir(root);
  sys.pivotRoot('.', '.');
  sys.umount2('.', MNT_DETACH);
  sys.chdir('/');
}
