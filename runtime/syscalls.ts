// Every raw Linux call the runtime makes, behind small typed wrappers. This is the only file that imports koffi.
// Each wrapper reads errno right after a failure and throws a SyscallError naming the call, its arguments (flags by
// name) and the errno name, so a failed mount reads like `mount("overlay", "/x/root", MS_NOSUID) failed: EINVAL`.
import os from 'node:os';
import koffi from 'koffi';
import { formatCloneFlags, formatMountFlags } from './flags.js';

const libc = koffi.load('libc.so.6');

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

export class SyscallError extends Error {
  override readonly name = 'SyscallError';
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: ${ERRNO_NAMES.get(errno) ?? `errno ${errno}`}`);
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
};

const SYS_pivot_root = 155; // x86_64; glibc has no wrapper
const PR_SET_NO_NEW_PRIVS = 38;
const PR_SET_SECCOMP = 22;
const SECCOMP_MODE_FILTER = 2;
const CLOSE_RANGE_CLOEXEC = 1 << 2;
const S_IFCHR = 0o020000;

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
    c.syscall(SYS_pivot_root, 'const char *', newRoot, 'const char *', putOld),
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
  check(c.mknod(p, S_IFCHR | mode, dev), () => `mknod(${q(p)}, char ${major}:${minor})`);
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
  check(c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), () => 'prctl(PR_SET_NO_NEW_PRIVS, 1)');
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
    c.prctlPtr(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0),
    () => 'prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)',
  );
}

/** Marks every fd >= first close-on-exec, so that no inherited descriptor reaches a sandbox. */
export function markCloseOnExecFrom(first: number): void {
  check(c.closeRange(first, 0xffffffff, CLOSE_RANGE_CLOEXEC), () => `close_range(${first}, ~0, CLOSE_RANGE_CLOEXEC)`);
}

export function gettid(): number {
  return c.gettid();
}
