// The directory an image's root filesystem is assembled in, before it becomes a layer. Paths are resolved inside it
// the way a chroot would resolve them: symlinks are followed, but an absolute target or a ".." starts again from the
// staging root, never from the host's. Packages ship symlinks such as /usr/lib/ssl/certs -> /etc/ssl/certs, and a
// later entry written through one must land in the image, not on the building host (GNU tar and `dpkg-deb -x`
// would follow it to the host's /etc, and they also replace the usrmerge links below with real directories).
//
// Debian bookworm is usrmerged: /bin, /sbin and /lib* are symlinks into /usr, and packages that still ship files
// under /bin reach /usr/bin through them, as on a real system. Owners other than root are remembered here rather
// than applied to the files, so that the layer does not depend on who builds it.
import fs from 'node:fs';
import path from 'node:path';
import { LidError } from '../../common/errors.js';

const USRMERGE_LINKS = ['bin', 'sbin', 'lib', 'lib64'];
const MAX_SYMLINK_HOPS = 40; // as the kernel's ELOOP limit

export interface Owner {
  uid: number;
  gid: number;
}

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

export class StagingRoot {
  /** Owners that are not root:root, by path relative to the root. */
  readonly owners = new Map<string, Owner>();

  private constructor(readonly dir: string) {}

  /** Makes an empty usrmerged root at `dir` (which must not exist). */
  static create(dir: string): StagingRoot {
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const root = new StagingRoot(dir);
    for (const name of USRMERGE_LINKS) {
      root.mkdirs(`usr/${name}`, 0o755);
      fs.symlinkSync(`usr/${name}`, path.join(dir, name));
    }
    return root;
  }

  /** Host path of a root-relative path (as returned by resolve). */
  hostPath(rel: string): string {
    return rel === '' ? this.dir : path.join(this.dir, rel);
  }

  /**
   * Resolves an image path to a root-relative path with no symlink in its parent directories; the last component
   * is followed too when `followLast` is set. "" is the root itself.
   */
  resolve(imagePath: string, followLast = false): string {
    let pending = components(imagePath);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        done.pop(); // ".." at the root stays at the root
        continue;
      }
      const rel = [...done, name].join('/');
      if (pending.length > 0 || followLast) {
        const st = fs.lstatSync(this.hostPath(rel), { throwIfNoEntry: false });
        if (st?.isSymbolicLink()) {
          if (++hops > MAX_SYMLINK_HOPS)
            throw new LidError('invalid_image', `too many levels of symbolic links resolving ${imagePath}`);
          const target = fs.readlinkSync(this.hostPath(rel));
          if (target.startsWith('/')) done.length = 0;
          pending = [...components(target), ...pending];
          continue;
        }
      }
      done.push(name);
    }
    return done.join('/');
  }

  /** Creates the real directories of a resolved path; an existing non-directory in the way is an error. */
  mkdirs(rel: string, mode = 0o755): void {
    let at = '';
    for (const name of components(rel)) {
      at = at ? `${at}/${name}` : name;
      const st = fs.lstatSync(this.hostPath(at), { throwIfNoEntry: false });
      if (st?.isDirectory()) continue;
      if (st) throw new LidError('invalid_image', `/${at} is not a directory, but something is placed under it`);
      fs.mkdirSync(this.hostPath(at));
      fs.chmodSync(this.hostPath(at), mode);
    }
  }

  /**
   * Prepares to create an entry at `imagePath`: resolves it, creates its parent directories and removes what is
   * there (a later package's file replaces an earlier one, as dpkg would). Returns the resolved path.
   */
  prepareEntry(imagePath: string): string {
    const rel = this.resolve(imagePath);
    if (rel === '') throw new LidError('invalid_image', `cannot replace the root directory with ${imagePath}`);
    this.mkdirs(path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    const st = fs.lstatSync(this.hostPath(rel), { throwIfNoEntry: false });
    if (st?.isDirectory())
      throw new LidError('invalid_image', `/${rel} is a directory and cannot become a file or link`);
    if (st) fs.unlinkSync(this.hostPath(rel));
    this.owners.delete(rel);
    return rel;
  }

  setOwner(rel: string, owner: Owner): void {
    if (owner.uid === 0 && owner.gid === 0) this.owners.delete(rel);
    else this.owners.set(rel, owner);
  }

  /** A directory at `imagePath` (an existing symlink to one is kept and followed, like usrmerge's /bin). */
  directory(imagePath: string, mode: number, owner: Owner = { uid: 0, gid: 0 }): string {
    const rel = this.resolve(imagePath, true);
    this.mkdirs(rel);
    if (rel !== '') fs.chmodSync(this.hostPath(rel), mode);
    this.setOwner(rel, owner);
    return rel;
  }

  symlink(imagePath: string, target: string, owner: Owner = { uid: 0, gid: 0 }): string {
    const rel = this.prepareEntry(imagePath);
    fs.symlinkSync(target, this.hostPath(rel));
    this.setOwner(rel, owner);
    return rel;
  }

  /** A hard link at `imagePath` to the existing file `targetImagePath`. */
  hardlink(imagePath: string, targetImagePath: string, owner: Owner = { uid: 0, gid: 0 }): string {
    const target = this.resolve(targetImagePath);
    const st = fs.lstatSync(this.hostPath(target), { throwIfNoEntry: false });
    if (!st?.isFile()) throw new LidError('invalid_image', `hard link ${imagePath} names a missing ${targetImagePath}`);
    const rel = this.prepareEntry(imagePath);
    fs.linkSync(this.hostPath(target), this.hostPath(rel));
    this.setOwner(rel, owner);
    return rel;
  }

  /** Opens a new regular file at `imagePath` for writing; never writes through anything that was there. */
  createFile(imagePath: string, mode: number, owner: Owner = { uid: 0, gid: 0 }): { rel: string; fd: number } {
    const rel = this.prepareEntry(imagePath);
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
    const fd = fs.openSync(this.hostPath(rel), flags, 0o600);
    fs.fchmodSync(fd, mode); // after open: the umask would strip bits, and setuid bits must survive
    this.setOwner(rel, owner);
    return { rel, fd };
  }

  writeFile(imagePath: string, content: string, mode = 0o644): string {
    const { rel, fd } = this.createFile(imagePath, mode);
    try {
      fs.writeSync(fd, content);
    } finally {
      fs.closeSync(fd);
    }
    return rel;
  }
}
