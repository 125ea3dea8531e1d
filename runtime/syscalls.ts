// Every raw Linux call the runtime makes, behind small typed wrappers. This is the only file that imports koffi.
// Each wrapper reads errno right after a failure and throws a SyscallError naming the call, its arguments (flags by
// name) and the errno name, so a failed mount reads like `mount("overlay", "/x/root", MS_NOSUID) failed: EINVAL`.
import os from 'node:os';
import koffi from 'koffi';
import { formatCloneFlags, formatMountFlags } from './flags.js';

const libc = koffi.load('libc.so.6');

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** "ENOENT" for 2; "errno N" for a number Node does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

export class SyscallError extends Error {
  override readonly name = 'SyscallError';
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: ${errnoName(errno)}`);
  }
  get code(): string {
    return ERRNO_NAMES.get(this.errno) ?? `E${this.errno}`;
  }
}

function check(result: number | bigint, describe: () => string): number {
  const n = Number(result);
  if (n < 0) throw new SyscallError(describe(), koffi.errno());
  return n;
}

// The kernel's and glibc's numbers these wrappers pass, x86_64, in one place (from the kernel's uapi headers and
// glibc's <spawn.h>, <signal.h>): system calls glibc has no wrapper for, and the flags and sizes the calls take.
const SYS = { pivot_root: 155, capget: 125, capset: 126, open_tree: 428, mount_setattr: 442 } as const;
const PR = {
  SET_SECCOMP: 22,
  CAPBSET_DROP: 24,
  SET_NO_NEW_PRIVS: 38,
  CAP_AMBIENT: 47,
  CAP_AMBIENT_RAISE: 2,
  SECCOMP_MODE_FILTER: 2,
} as const;
const FLAG = {
  CLOSE_RANGE_CLOEXEC: 1 << 2,
  S_IFCHR: 0o020000,
  F_DUPFD_CLOEXEC: 1030,
  WNOHANG: 1,
  LOCK_EX: 2,
  LOCK_NB: 4,
  MFD_CLOEXEC: 1,
  AT_FDCWD: -100,
  AT_EMPTY_PATH: 0x1000,
  OPEN_TREE_CLONE: 1,
  OPEN_TREE_CLOEXEC: 0o2000000,
  POSIX_SPAWN_SETSIGDEF: 0x04,
  POSIX_SPAWN_SETSIGMASK: 0x08,
  LINUX_CAPABILITY_VERSION_3: 0x20080522,
} as const;
const MOUNT_ATTR = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, IDMAP: 0x100000 } as const;
/** glibc's opaque structure sizes, for buffers the calls fill. */
const SIZEOF = { FILE_ACTIONS: 80, SPAWNATTR: 336, SIGSET: 128 } as const;
const EWOULDBLOCK = 11;

const q = (s: string | null) => (s === null ? 'NULL' : JSON.stringify(s));

const c = {
  unshare: libc.func('int unshare(int flags)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  mount: libc.func(
    'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)',
  ),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  syscall: libc.func('long syscall(long number, ...)'),
  chdir: libc.func('int chdir(const char *path)'),
  fchdir: libc.func('int fchdir(int fd)'),
  chroot: libc.func('int chroot(const char *path)'),
  sethostname: libc.func('int sethostname(const char *name, size_t len)'),
  mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  close: libc.func('int close(int fd)'),
  write: libc.func('long write(int fd, const void *buf, size_t len)'),
  prctl: libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
  prctlPtr: libc.func('prctl', 'int', ['int', 'unsigned long', 'void *', 'unsigned long', 'unsigned long']),
  closeRange: libc.func('int close_range(unsigned int first, unsigned int last, int flags)'),
  gettid: libc.func('int gettid()'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
  spawn: libc.func(
    'int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)',
  ),
  actionsInit: libc.func('int posix_spawn_file_actions_init(void *actions)'),
  actionsDestroy: libc.func('int posix_spawn_file_actions_destroy(void *actions)'),
  actionsDup2: libc.func('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
  attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
  attrSetFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
  attrSetSigMask: libc.func('int posix_spawnattr_setsigmask(void *attr, const void *sigset)'),
  attrSetSigDefault: libc.func('int posix_spawnattr_setsigdefault(void *attr, const void *sigset)'),
  sigemptyset: libc.func('int sigemptyset(void *set)'),
  sigfillset: libc.func('int sigfillset(void *set)'),
  flock: libc.func('int flock(int fd, int op)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  sendto: libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
  recv: libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  pwrite: libc.func('long pwrite(int fd, const void *buf, size_t len, long offset)'),
};

export function unshare(flags: number): void {
  check(c.unshare(flags), () => `unshare(${formatCloneFlags(flags)})`);
}

export function setns(fd: number, nstype: number): void {
  check(c.setns(fd, nstype), () => `setns(${fd}, ${formatCloneFlags(nstype)})`);
}

export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null = null,
): void {
  check(
    c.mount(source, target, fstype, flags, data),
    () => `mount(${q(source)}, ${q(target)}, ${q(fstype)}, ${formatMountFlags(flags)}, ${q(data)})`,
  );
}

export function umount2(target: string, flags: number): void {
  check(c.umount2(target, flags), () => `umount2(${q(target)}, ${flags})`);
}

export function pivotRoot(newRoot: string, putOld: string): void {
  check(
    c.syscall(SYS.pivot_root, 'const char *', newRoot, 'const char *', putOld),
    () => `pivot_root(${q(newRoot)}, ${q(putOld)})`,
  );
}

export function chdir(p: string): void {
  check(c.chdir(p), () => `chdir(${q(p)})`);
}

export function fchdir(fd: number): void {
  check(c.fchdir(fd), () => `fchdir(${fd})`);
}

export function chroot(p: string): void {
  check(c.chroot(p), () => `chroot(${q(p)})`);
}

export function sethostname(name: string): void {
  check(c.sethostname(name, Buffer.byteLength(name)), () => `sethostname(${q(name)})`);
}

/** Creates a character device node (mode bits given without the type). */
export function mknodChar(p: string, mode: number, major: number, minor: number): void {
  const dev = (BigInt(major) << 8n) | BigInt(minor);
  check(c.mknod(p, FLAG.S_IFCHR | mode, dev), () => `mknod(${q(p)}, char ${major}:${minor})`);
}

/** A close-on-exec pipe: [readEnd, writeEnd]. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check(c.pipe2(fds, 0o2000000), () => 'pipe2(O_CLOEXEC)');
  return [fds[0]!, fds[1]!];
}

export function close(fd: number): void {
  check(c.close(fd), () => `close(${fd})`);
}

export function write(fd: number, data: Uint8Array): number {
  return check(c.write(fd, data, data.length), () => `write(${fd}, ${data.length} bytes)`);
}

/** Sets no_new_privs on the calling thread; it is inherited by every child it spawns. */
export function setNoNewPrivs(): void {
  check(c.prctl(PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0), () => 'prctl(PR_SET_NO_NEW_PRIVS, 1)');
}

/** Installs a classic-BPF seccomp filter (an array of 8-byte sock_filter entries) on the calling thread. */
export function installSeccompFilter(program: Uint8Array): void {
  const count = program.length / 8;
  if (!Number.isInteger(count) || count === 0 || count > 4096)
    throw new RangeError(`bad seccomp program length ${program.length}`);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } laid out by hand: 2 bytes + 6 padding + pointer
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(count, 0);
  fprog.writeBigUInt64LE(BigInt(koffi.address(program)), 8);
  check(
    c.prctlPtr(PR.SET_SECCOMP, PR.SECCOMP_MODE_FILTER, fprog, 0, 0),
    () => 'prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)',
  );
}

/** Marks every fd >= first close-on-exec, so that no inherited descriptor reaches a sandbox. */
export function markCloseOnExecFrom(first: number): void {
  check(
    c.closeRange(first, 0xffffffff, FLAG.CLOSE_RANGE_CLOEXEC),
    () => `close_range(${first}, ~0, CLOSE_RANGE_CLOEXEC)`,
  );
}

/** Duplicates fd to the lowest free number >= min, close-on-exec. */
export function dupAtLeast(fd: number, min: number): number {
  return check(c.fcntl(fd, FLAG.F_DUPFD_CLOEXEC, min), () => `fcntl(${fd}, F_DUPFD_CLOEXEC, ${min})`);
}

/**
 * Starts a program with glibc's posix_spawn, which clones with CLONE_VM|CLONE_VFORK: unlike fork (what Node's
 * child_process uses), it copies no page tables, so its cost does not grow with this process's memory (measured
 * here: fork-based spawn takes 0.7 ms at 50 MB RSS and 12 ms at 500 MB). The child gets `fds` as [source, target]
 * pairs (sources must all be >= the highest target), default signal handlers and an empty signal mask; it inherits
 * the calling thread's namespaces, root, no_new_privs and seccomp filter.
 */
export function posixSpawn(file: string, argv: string[], env: Record<string, string>, fds: [number, number][]): number {
  const actions = Buffer.alloc(SIZEOF.FILE_ACTIONS);
  const attr = Buffer.alloc(SIZEOF.SPAWNATTR);
  const empty = Buffer.alloc(SIZEOF.SIGSET);
  const all = Buffer.alloc(SIZEOF.SIGSET);
  c.actionsInit(actions);
  c.attrInit(attr);
  try {
    for (const [from, to] of fds) c.actionsDup2(actions, from, to);
    c.sigemptyset(empty);
    c.sigfillset(all);
    c.attrSetSigMask(attr, empty);
    c.attrSetSigDefault(attr, all);
    c.attrSetFlags(attr, FLAG.POSIX_SPAWN_SETSIGMASK | FLAG.POSIX_SPAWN_SETSIGDEF);
    const pid = new Int32Array(1);
    const envp = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const err = c.spawn(pid, file, actions, attr, [...argv, null], [...envp, null]);
    if (err !== 0) throw new SyscallError(`posix_spawn(${q(file)})`, err);
    return pid[0]!;
  } finally {
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
  }
}

/** Waits for a child to end and reaps it. */
export function waitpid(pid: number): WaitStatus {
  const status = new Int32Array(1);
  check(c.waitpid(pid, status, 0), () => `waitpid(${pid})`);
  const s = status[0]!;
  return (s & 0x7f) === 0 ? { exitCode: (s >> 8) & 0xff, signal: null } : { exitCode: null, signal: s & 0x7f };
}

export type WaitStatus = { exitCode: number; signal: null } | { exitCode: null; signal: number };

/** Reaps a child if it has ended: its exit code or killing signal, or null while it still runs. */
export function waitpidNoHang(pid: number): WaitStatus | null {
  const status = new Int32Array(1);
  const r = check(c.waitpid(pid, status, FLAG.WNOHANG), () => `waitpid(${pid}, WNOHANG)`);
  if (r === 0) return null;
  const s = status[0]!;
  return (s & 0x7f) === 0 ? { exitCode: (s >> 8) & 0xff, signal: null } : { exitCode: null, signal: s & 0x7f };
}

/** Takes an exclusive flock(2) on fd without waiting: false when another open file holds it. */
export function flockExclusiveNoWait(fd: number): boolean {
  if (c.flock(fd, FLAG.LOCK_EX | FLAG.LOCK_NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === EWOULDBLOCK) return false;
  throw new SyscallError(`flock(${fd}, LOCK_EX|LOCK_NB)`, errno);
}

/** An empty anonymous in-memory file (close-on-exec). */
export function memfd(name: string): number {
  return check(c.memfdCreate(name, FLAG.MFD_CLOEXEC), () => `memfd_create(${q(name)}, MFD_CLOEXEC)`);
}

/** Writes all of `data` at `offset` of fd (its file position does not move). */
export function pwriteAll(fd: number, data: Uint8Array, offset = 0): void {
  for (let done = 0; done < data.length;) {
    const rest = data.subarray(done);
    done += check(c.pwrite(fd, rest, rest.length, offset + done), () => `pwrite(${fd}, ${rest.length} bytes)`);
  }
}

/**
 * A detached, read-only, nosuid, nodev copy of the mount at `dir` whose file owners appear through the user namespace
 * `usernsFd` (an idmapped mount): an image file owned by uid u on disk shows as owned by whatever host id u maps to.
 * Returns its fd; the mount lives while the fd, or a mount built on it (an overlay's lower layer), does.
 */
export function idmappedTree(dir: string, usernsFd: number): number {
  const fd = check(
    c.syscall(
      SYS.open_tree,
      'int',
      FLAG.AT_FDCWD,
      'const char *',
      dir,
      'unsigned int',
      FLAG.OPEN_TREE_CLONE | FLAG.OPEN_TREE_CLOEXEC,
    ),
    () => `open_tree(${q(dir)}, OPEN_TREE_CLONE)`,
  );
  try {
    // struct mount_attr { u64 attr_set; u64 attr_clr; u64 propagation; u64 userns_fd; }
    const attr = new BigUint64Array([
      BigInt(MOUNT_ATTR.IDMAP | MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV),
      0n,
      0n,
      BigInt(usernsFd),
    ]);
    check(
      c.syscall(
        SYS.mount_setattr,
        'int',
        fd,
        'const char *',
        '',
        'unsigned int',
        FLAG.AT_EMPTY_PATH,
        'void *',
        attr,
        'size_t',
        32,
      ),
      () =>
        `mount_setattr(${fd}, MOUNT_ATTR_IDMAP|MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV, userns ${usernsFd})`,
    );
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

/**
 * Gives the programs the calling thread execs exactly `caps`, whatever the program: they become inheritable and
 * ambient (kept across execve), and the bounding set is emptied (so nothing else can be gained, and nothing the
 * thread still holds itself passes on). The thread's own permitted and effective sets do not change.
 */
export function passOnlyCapabilities(caps: number[], lastCap: number): void {
  // capabilities the thread does not hold itself are left out
  // struct __user_cap_header_struct { u32 version; int pid; } and two struct __user_cap_data_struct
  // { u32 effective, permitted, inheritable; } (low and high 32 capabilities)
  const header = new Uint32Array([FLAG.LINUX_CAPABILITY_VERSION_3, 0]);
  const data = new Uint32Array(6);
  check(c.syscall(SYS.capget, 'void *', header, 'void *', data), () => 'capget()');
  const permitted = (cap: number) => (data[(cap >> 5) * 3 + 1]! & (1 << (cap & 31))) !== 0;
  caps = caps.filter(permitted); // a container may have withheld some (seen here: CAP_SYS_RESOURCE)
  for (const cap of caps) data[(cap >> 5) * 3 + 2]! |= 1 << (cap & 31);
  check(c.syscall(SYS.capset, 'void *', header, 'void *', data), () => 'capset(inheritable)');
  for (const cap of caps)
    check(c.prctl(PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap, 0, 0), () => `prctl(PR_CAP_AMBIENT_RAISE, ${cap})`);
  for (let cap = 0; cap <= lastCap; cap++)
    check(c.prctl(PR.CAPBSET_DROP, cap, 0, 0, 0), () => `prctl(PR_CAPBSET_DROP, ${cap})`);
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_BUFFER = 64 * 1024;

/** A netlink socket of `protocol` (NETLINK_ROUTE 0, NETLINK_NETFILTER 12) in the calling thread's network namespace. */
export function netlinkSocket(protocol: number): number {
  return check(c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol), () => `socket(AF_NETLINK, ${protocol})`);
}

/** Sends one datagram to the kernel (struct sockaddr_nl { u16 family; u16 pad; u32 pid = 0; u32 groups = 0 }). */
export function netlinkSend(fd: number, data: Uint8Array): void {
  const kernel = Buffer.alloc(12);
  kernel.writeUInt16LE(AF_NETLINK, 0);
  check(c.sendto(fd, data, data.length, 0, kernel, kernel.length), () => `sendto(netlink ${fd}, ${data.length} bytes)`);
}

/** Receives one datagram from the kernel, waiting for it. */
export function netlinkReceive(fd: number): Buffer {
  const buf = Buffer.alloc(NETLINK_BUFFER);
  const n = check(c.recv(fd, buf, buf.length, 0), () => `recv(netlink ${fd})`);
  return buf.subarray(0, n);
}

export function gettid(): number {
  return c.gettid();
}
