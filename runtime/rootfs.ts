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
  /** Lid's own files (resolv.conf, hosts): root's and read-only to the job, placed before the job's. */
  systemFiles?: { path: string; content: string }[];
  cwd: string;
  /** The sandbox's uid slot (runtime/uid-slots.ts): image owner u on disk is host id base + u, 0 stays 0. */
  slot: { base: number; maxId: number; usernsFd: number };
}

const MAX_MOUNT_DATA = 4095;
const MAX_PTYS = 64; // the kernel copies at most one page of mount options

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

/**
 * The image's entry at `rel` as overlayfs shows it -- the topmost layer holding the path decides, a whiteout hides it
 * -- found without ever following a symlink: every layer is walked one component at a time, and a layer stops
 * counting below a component that is not a real directory in it, so lstat only ever meets a symlink as the last
 * component, which it does not follow. (An image's `etc -> /etc` must never let host code see the host's /etc.)
 * Opaque directories are not read (that needs xattrs): a lower layer's entry under one counts as visible, which at
 * worst refuses a file or copies a directory's owner that the job would not have seen.
 */
function lowerEntry(layersTopFirst: string[], rel: string): fs.Stats | null {
  let layers = layersTopFirst; // layers in which the path so far is a real directory
  let entry: fs.Stats | null = null;
  let prefix = '';
  for (const part of rel.split('/').filter(Boolean)) {
    if (entry && !entry.isDirectory()) return null; // below a file or a symlink there is nothing
    prefix = `${prefix}/${part}`;
    const deeper: string[] = [];
    entry = null;
    for (const layer of layers) {
      const st = fs.lstatSync(layer + prefix, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isCharacterDevice() && st.rdev === 0) break; // overlay whiteout: hidden here and below
      entry ??= st;
      if (!st.isDirectory()) break; // a non-directory hides whatever lower layers hold at this path
      deeper.push(layer);
    }
    if (!entry) return null;
    layers = deeper;
  }
  return entry;
}

/** The host id an image's on-disk owner id shows as in the sandbox's idmapped layers (65534 when it has none). */
export function hostId(id: number, slot: { base: number; maxId: number }): number {
  if (id === 0) return 0;
  return slot.base + (id <= slot.maxId ? id : 65534);
}

function kindOf(st: fs.Stats): string {
  return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'special file';
}

/**
 * Creates a directory chain in the upper layer. Directories the image already has are copied up with their own
 * owner and mode (so placing /usr/local/x never hands /usr to the job); new ones are listed in `owned`, to belong to
 * the job's user (lid-init gives them to it once it has resolved the user inside the sandbox).
 */
function ensureUpperDirs(
  upper: string,
  layersTopFirst: string[],
  dir: string,
  owned: string[] | null,
  slot: RootfsPlan['slot'],
): void {
  let rel = '';
  for (const part of dir.split('/').filter(Boolean)) {
    rel = `${rel}/${part}`;
    const target = upper + rel;
    const inUpper = fs.lstatSync(target, { throwIfNoEntry: false });
    if (inUpper?.isDirectory()) continue;
    const below = lowerEntry(layersTopFirst, rel);
    if (below && !below.isDirectory()) {
      throw new LidError('invalid_spec', `cannot place a file under ${rel}: the image has a ${kindOf(below)} there`);
    }
    fs.mkdirSync(target, { mode: 0o755 });
    if (below) {
      // Owned as the idmapped layer shows it, so the copy matches what the job sees below it.
      fs.chownSync(target, hostId(below.uid, slot), hostId(below.gid, slot));
      fs.chmodSync(target, below.mode & 0o1777); // never a setuid/setgid bit
    } else {
      owned?.push(rel);
    }
  }
}

/** Creates `target` with `content`: O_EXCL|O_NOFOLLOW, since the upper layer is fresh and ours, never write through
 * anything that already exists. */
function writeNew(target: string, content: Uint8Array | string, mode: number): void {
  const fd = fs.openSync(
    target,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
    0o600,
  );
  try {
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes the job's files into the fresh upper layer; returns the paths (inside the sandbox) the job must own. */
function placeFiles(upper: string, plan: RootfsPlan): string[] {
  const layersTopFirst = [...plan.layers].reverse();
  const owned: string[] = [];
  // A private, writable /tmp for every job (it lives in the size-capped upper layer).
  ensureUpperDirs(upper, layersTopFirst, '/tmp', null, plan.slot);
  fs.chmodSync(`${upper}/tmp`, 0o1777);
  for (const file of plan.systemFiles ?? []) {
    ensureUpperDirs(upper, layersTopFirst, path.dirname(file.path), null, plan.slot);
    writeNew(upper + file.path, file.content, 0o644);
  }
  for (const file of plan.files) {
    if (plan.systemFiles?.some((f) => f.path === file.path))
      throw new LidError('invalid_spec', `cannot place a file at ${file.path}: Lid provides it in a networked sandbox`);
    ensureUpperDirs(upper, layersTopFirst, path.dirname(file.path), owned, plan.slot);
    const below = lowerEntry(layersTopFirst, file.path);
    if (below?.isDirectory())
      throw new LidError('invalid_spec', `cannot place a file at ${file.path}: the image has a directory there`);
    writeNew(upper + file.path, file.content, file.mode);
    owned.push(file.path);
  }
  ensureUpperDirs(upper, layersTopFirst, plan.cwd, owned, plan.slot);
  return owned;
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
  // max= caps the pseudo-terminals one sandbox can open (each costs kernel memory outside its cgroup's reach).
  sys.mount(
    'devpts',
    `${dev}/pts`,
    'devpts',
    MS.NOSUID | MS.NOEXEC,
    `newinstance,ptmxmode=0666,mode=0620,max=${MAX_PTYS}`,
  );
  sys.mount('shm', `${dev}/shm`, 'tmpfs', MS.NOSUID | MS.NODEV | MS.NOEXEC, `size=${shmBytes},mode=1777`);
}

/**
 * /proc and /dev of the image become mount points, so they must be plain directories (or absent, then made): mount(2)
 * follows symlinks, and an image's `dev -> /tmp` or `proc -> /` would put the kernel's trees elsewhere and leave the
 * masks of /proc unapplied. Fail closed, before anything is mounted there.
 */
function mountPointFor(root: string, dir: 'proc' | 'dev'): void {
  const st = fs.lstatSync(`${root}/${dir}`, { throwIfNoEntry: false }); // the overlay's merged view, not followed
  if (!st) {
    fs.mkdirSync(`${root}/${dir}`, { mode: 0o755 });
    return;
  }
  if (!st.isDirectory()) {
    throw new LidError(
      'invalid_image',
      `the image's /${dir} is a ${kindOf(st)}: Lid mounts the kernel's /${dir} there and needs a plain directory (or nothing) at that path`,
      { path: `/${dir}` },
    );
  }
}

/** Layer directories whose file system refused an idmapped mount (tmpfs before Linux 6.3, 9p, NFS...). */
const noIdmap = new Set<string>();
const IDMAP_UNSUPPORTED = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOSYS', 'EPERM']);

/**
 * The layers as overlay lower directories: each through an idmapped mount of the slot's user namespace, so the
 * image's file owners line up with the ids the job has inside (its USER owns its files), at about 10 us a layer; the
 * overlay keeps the detached mounts once made, so the fds can be closed then. Where a layer's file system cannot be
 * idmapped, every layer is used as it is (all or none, so ownership is alike across layers): then image files owned
 * by anyone but root show as nobody inside. Nothing is less isolated either way.
 */
function stackLayers(layers: string[], usernsFd: number): { dirs: string[]; fds: number[] } {
  if (layers.some((l) => noIdmap.has(l))) return { dirs: layers, fds: [] };
  const fds: number[] = [];
  try {
    for (const layer of layers) fds.push(sys.idmappedTree(layer, usernsFd));
  } catch (e) {
    for (const fd of fds) sys.close(fd);
    if (!(e instanceof sys.SyscallError) || !IDMAP_UNSUPPORTED.has(e.code)) throw e;
    for (const layer of layers) noIdmap.add(layer);
    return { dirs: layers, fds: [] };
  }
  return { dirs: fds.map((fd) => `/proc/self/fd/${fd}`), fds };
}

/**
 * Builds the root and makes it the calling thread's root. Must run in a fresh private mount namespace; afterwards the
 * thread's root is the sandbox's, until the caller returns to the host's namespace. Returns the paths the job must
 * own (see placeFiles).
 */
export function buildAndEnterRootfs(plan: RootfsPlan): string[] {
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
  const owned = placeFiles(upper, plan);
  const lower = stackLayers(plan.layers, plan.slot.usernsFd);
  try {
    sys.mount('overlay', root, 'overlay', MS.NOSUID | MS.NODEV, overlayOptions(lower.dirs, upper, work));
  } finally {
    for (const fd of lower.fds) sys.close(fd);
  }
  for (const dir of ['proc', 'dev'] as const) mountPointFor(root, dir);
  mountDev(root, Math.min(plan.diskBytes, 64 * 1024 * 1024));
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the sandbox's tree.
  sys.chdir(root);
  sys.pivotRoot('.', '.');
  sys.umount2('.', MNT_DETACH);
  sys.chdir('/');
  return owned;
}
