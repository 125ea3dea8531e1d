// The two overlayfs on-disk markers an unpacked layer needs: a whiteout (a 0:0 character device hiding a lower
// entry) and an opaque directory (the trusted.overlay.opaque xattr hiding a lower directory's contents). Node has
// neither mknod nor setxattr, so they go through koffi. This is images/' own koffi module because images/ may not
// import runtime/, whose syscalls.ts is the runtime's only one; errors follow the same shape (call, path, errno name).
import os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
};

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

export class OverlayMarkerError extends Error {
  override readonly name = 'OverlayMarkerError';
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

function check(result: number, describe: () => string): void {
  if (result < 0) throw new OverlayMarkerError(describe(), koffi.errno());
}

const S_IFCHR = 0o020000;
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const OPAQUE_VALUE = Buffer.from('y');

/** Creates an overlayfs whiteout at `path`: a character device 0:0 with no permission bits, as overlayfs writes them. */
export function makeWhiteout(path: string): void {
  check(c.mknod(path, S_IFCHR, 0), () => `mknod(${JSON.stringify(path)}, S_IFCHR, 0:0)`);
}

/** Marks `dir` opaque, so that overlayfs hides whatever lower layers hold under the same path. */
export function setOpaque(dir: string): void {
  check(
    c.lsetxattr(dir, OPAQUE_XATTR, OPAQUE_VALUE, OPAQUE_VALUE.length, 0),
    () => `lsetxattr(${JSON.stringify(dir)}, ${JSON.stringify(OPAQUE_XATTR)}, "y")`,
  );
}
