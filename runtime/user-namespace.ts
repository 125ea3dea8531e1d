// Making a user namespace for a uid slot (runtime/uid-slots.ts). A multi-threaded process cannot unshare one itself
// (kernel fact 1), so lid-init's holder mode does it: it unshares, says so on stdout, and waits for stdin to close.
// Meanwhile this process, root on the host, writes the namespace's maps and opens /proc/PID/ns/user; the fd keeps the
// namespace alive after the holder exits. Done once per slot a runtime claims (about a millisecond); every sandbox
// in the slot later only setns()es into it.
import fs from 'node:fs';
import { LidError } from '../common/errors.js';
import * as sys from './syscalls.js';

/** The maps of a slot: the sandbox's 0 is the host's 0, its 1..span-1 are base+1..base+span-1. Pure. */
export function slotIdMap(base: number, span: number): string {
  return `0 0 1\n1 ${base + 1} ${span - 1}\n`;
}

/** Returns an fd (close-on-exec) of a new user namespace whose uid and gid maps are slotIdMap(base, span). */
export function createUserNamespace(holderPath: string, base: number, span: number): number {
  const [stdinRead, stdinWrite] = sys.pipe();
  const [stdoutRead, stdoutWrite] = sys.pipe();
  let pid: number;
  try {
    // Pipe fds are above 2 (stdio is open), as posixSpawn needs of its sources.
    pid = sys.posixSpawn(holderPath, [holderPath, 'userns-holder'], {}, [
      [stdinRead, 0],
      [stdoutWrite, 1],
    ]);
  } finally {
    sys.close(stdinRead);
    sys.close(stdoutWrite);
  }
  try {
    const ready = Buffer.alloc(1);
    if (fs.readSync(stdoutRead, ready) !== 1)
      throw new LidError('unsupported', 'cannot create a user namespace for sandboxes (is unprivileged_userns off?)');
    const map = slotIdMap(base, span);
    // A privileged writer may map ids it does not hold; setgroups stays allowed, so lid-init can clear the groups.
    fs.writeFileSync(`/proc/${pid}/uid_map`, map);
    fs.writeFileSync(`/proc/${pid}/gid_map`, map);
    return fs.openSync(`/proc/${pid}/ns/user`, 'r');
  } finally {
    sys.close(stdinWrite); // the holder exits on end of file
    sys.close(stdoutRead);
    sys.waitpid(pid);
  }
}
