// The namespaces a sandbox gets, in one ordered list, and the way back: the spawner thread unshares them all (they
// are per thread, kernel fact 1), spawns the sandbox's init into them, then returns to the host's through fds it
// opened at start. The cgroup namespace is the one exception: lid-init makes it after it has been moved into the
// job's cgroups, so that its root is the job's cgroup.
import fs from 'node:fs';
import { CLONE } from './flags.js';
import * as sys from './syscalls.js';

export const SANDBOX_NAMESPACES = [
  { name: 'mnt', flag: CLONE.NEWNS, file: 'mnt' },
  { name: 'uts', flag: CLONE.NEWUTS, file: 'uts' },
  { name: 'ipc', flag: CLONE.NEWIPC, file: 'ipc' },
  { name: 'net', flag: CLONE.NEWNET, file: 'net' },
  // unshare(CLONE_NEWPID) changes only where the thread's next child goes: the thread itself stays put.
  { name: 'pid', flag: CLONE.NEWPID, file: 'pid_for_children' },
] as const;

export const SANDBOX_CLONE_FLAGS = SANDBOX_NAMESPACES.reduce((flags, ns) => flags | ns.flag, 0);

/**
 * The thread could not get back to the host's namespaces, root or working directory: it must host no other sandbox
 * (its next one would be built from inside this one). sandbox-thread.ts ends the thread on it.
 */
export class HostUnreachableError extends Error {
  override readonly name = 'HostUnreachableError';
  constructor(cause: unknown) {
    super(`the spawner thread could not return to the host: ${(cause as Error).message}`, { cause });
  }
}

/** The calling thread's original namespaces, root and working directory, to come back to after each sandbox. */
export class HostNamespaces {
  private readonly nsFds: { flag: number; fd: number }[];
  private readonly rootFd: number;
  private readonly cwdFd: number;

  constructor() {
    this.nsFds = SANDBOX_NAMESPACES.map((ns) => ({
      flag: ns.flag,
      fd: fs.openSync(`/proc/thread-self/ns/${ns.file}`, 'r'),
    }));
    this.rootFd = fs.openSync('/', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    this.cwdFd = fs.openSync('.', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  }

  enterNew(): void {
    sys.unshare(SANDBOX_CLONE_FLAGS);
  }

  /**
   * Returns the thread to the host. setns into a mount namespace resets root and cwd to that namespace's root, not
   * to a chroot the process may have been in (kernel fact 4): restore both from the saved fds.
   */
  restore(): void {
    try {
      for (const { fd, flag } of this.nsFds) sys.setns(fd, flag);
      sys.fchdir(this.rootFd);
      sys.chroot('.');
      sys.fchdir(this.cwdFd);
    } catch (e) {
      throw new HostUnreachableError(e);
    }
  }
}
