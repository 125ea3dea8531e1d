// Host uids for sandboxes: no two sandboxes that run at the same time share one. Signals (kill(-1, sig), kill(0,
// sig)), /proc access and file ownership are all decided by host uid, so a shared uid would put every tenant's
// processes within reach of every other's. The model is isolate's box uids, widened as rootless containers do it:
//
//   a slot is a span of 65536 host ids, [base, base + 65536), that belongs to one running sandbox at a time. The
//   sandbox's user namespace maps its ids 1..65535 to base+1..base+65535, and 0 to the host's 0 (so the image's
//   root-owned files show as root's: jobs themselves never run as uid 0). The job's uid is the image's USER, so
//   `id`, `whoami` and file ownership inside mean what the image says, and on the host it is base + that uid.
//
// The range (default 0x70000000 up to 2^31: above every range systemd hands to users, services and containers, see
// systemd's UIDS-GIDS.md, and below the ids some tools misread as negative) must hold no host account: checked
// against /etc/passwd and /etc/group at start. Several runtimes may share a host (a worker, `lid sandbox run`, the
// tests): each slot is claimed with flock(2) on its own lock file, which the kernel lets go of when the process
// dies, however it dies. A runtime keeps the slots it has claimed, with their user namespaces, until it closes; a
// slot in which some process still runs (a sandbox of a crashed runtime the sweep has not reached) is skipped.
import fs from 'node:fs';
import path from 'node:path';
import { LidError } from '../common/errors.js';
import * as sys from './syscalls.js';
import { createUserNamespace } from './user-namespace.js';

export interface UidRange {
  first: number;
  count: number;
}

/** Host ids per slot: a sandbox's ids 0..65535 (0 itself maps to the host's root). */
export const SLOT_SPAN = 65536;
export const DEFAULT_UID_RANGE: UidRange = Object.freeze({ first: 0x70000000, count: 0x10000000 });
const DEFAULT_LOCK_DIR = '/run/lid/uid-slots';

export interface UidSlot {
  /** Host id of the sandbox's id 0 span: its id u (1..65535) is base + u on the host. */
  base: number;
  /** An fd of the slot's user namespace, which lid-init enters with setns. */
  usernsFd: number;
}

const rangeText = (r: UidRange) => `${r.first}-${r.first + r.count - 1}`;

/** Host accounts (users and groups) whose id falls in the range: the range must have none. */
export function accountsInRange(range: UidRange, files = ['/etc/passwd', '/etc/group']): string[] {
  const found: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      const n = Number(id);
      if (name && id && Number.isInteger(n) && n >= range.first && n < range.first + range.count)
        found.push(`${path.basename(file) === 'group' ? 'group' : 'user'} ${name} (${n})`);
    }
  }
  return found;
}

/** Whether a live process runs with an effective uid in [first, first + count) (the owner of /proc/PID). */
function anyProcessIn(first: number, count: number): boolean {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const uid = fs.statSync(`/proc/${entry}`, { throwIfNoEntry: false })?.uid;
    if (uid !== undefined && uid >= first && uid < first + count) return true;
  }
  return false;
}

interface Claimed extends UidSlot {
  lockFd: number;
}

export class UidSlots {
  private readonly free: Claimed[] = [];
  private readonly taken = new Map<number, Claimed>(); // by base
  private next: number; // where to look for the next slot to claim
  private closed = false;

  private constructor(
    private readonly range: UidRange,
    private readonly lockDir: string,
    private readonly holderPath: string,
  ) {
    this.next = range.first;
  }

  /**
   * Checks the range and prepares to claim slots from it. `holderPath` is lid-init, whose holder mode makes user
   * namespaces (runtime/user-namespace.ts).
   */
  static open(holderPath: string, range: UidRange = DEFAULT_UID_RANGE, lockDir = DEFAULT_LOCK_DIR): UidSlots {
    if (range.first < 1 || range.count < SLOT_SPAN || range.first + range.count - 1 > 0xfffffffe) {
      throw new LidError(
        'invalid_spec',
        `sandbox uid range ${rangeText(range)} must lie within 1-4294967294 and hold at least ${SLOT_SPAN} ids`,
      );
    }
    const clash = accountsInRange(range);
    if (clash.length) {
      throw new LidError(
        'unsupported',
        `the sandbox uid range ${rangeText(range)} holds host accounts (${clash.slice(0, 3).join(', ')}): ` +
          'choose a range no account uses with LID_SANDBOX_UIDS',
      );
    }
    fs.mkdirSync(lockDir, { recursive: true, mode: 0o700 });
    return new UidSlots(range, lockDir, holderPath);
  }

  get inUse(): number {
    return this.taken.size;
  }

  /** Slots claimed and not let go: in use or kept for the next sandbox. */
  get held(): number {
    return this.taken.size + this.free.length;
  }

  /** The slot's number in the range (0, 1, ...): unique on the host while the slot is held, like its base. */
  indexOf(base: number): number {
    return (base - this.range.first) / SLOT_SPAN;
  }

  /** Does some runtime on this host (this one included) hold slot number `index`? */
  isHeld(index: number): boolean {
    const base = this.range.first + index * SLOT_SPAN;
    if (this.taken.has(base) || this.free.some((s) => s.base === base)) return true;
    let fd: number;
    try {
      fd = fs.openSync(path.join(this.lockDir, `slot-${base}.lock`), 'r');
    } catch {
      return false; // never claimed on this host since boot (/run is a tmpfs)
    }
    try {
      return !sys.flockExclusiveNoWait(fd); // taken: someone holds it. Closing the fd lets go of ours.
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A slot no other running sandbox on this host has, until release(). */
  take(): UidSlot {
    if (this.closed) throw new LidError('internal', 'the uid slots are closed');
    const slot = this.free.pop() ?? this.claim();
    this.taken.set(slot.base, slot);
    return slot;
  }

  /** Gives a slot back. Call only once no process of its sandbox is left (its cgroup is killed and removed). */
  release(base: number): void {
    const slot = this.taken.get(base);
    if (!slot) {
      if (this.closed) return; // let go of already, at close
      throw new RangeError(`uid slot ${base} was not taken`);
    }
    this.taken.delete(base);
    if (this.closed) this.letGo(slot);
    else this.free.push(slot);
  }

  /**
   * Lets go of every slot (idempotent). Call once no sandbox of this runtime is left: the runtime does, after its
   * cgroups have killed whatever its threads left running.
   */
  close(): void {
    this.closed = true;
    for (const slot of [...this.free.splice(0), ...this.taken.values()]) this.letGo(slot);
    this.taken.clear();
  }

  private claim(): Claimed {
    const end = this.range.first + this.range.count;
    const slots = Math.floor(this.range.count / SLOT_SPAN);
    for (let tried = 0; tried < slots; tried++) {
      const base = this.next;
      this.next = base + 2 * SLOT_SPAN <= end ? base + SLOT_SPAN : this.range.first;
      if (this.taken.has(base) || this.free.some((s) => s.base === base)) continue;
      const lockFd = fs.openSync(path.join(this.lockDir, `slot-${base}.lock`), 'a', 0o600); // close-on-exec (libuv)
      if (sys.flockExclusiveNoWait(lockFd) && !anyProcessIn(base, SLOT_SPAN)) {
        try {
          return { base, lockFd, usernsFd: createUserNamespace(this.holderPath, base, SLOT_SPAN) };
        } catch (e) {
          fs.closeSync(lockFd);
          throw e;
        }
      }
      fs.closeSync(lockFd); // another runtime holds it, or something still runs there: try the next
    }
    throw new LidError(
      'setup_failed',
      `all ${slots} sandbox uid slots of ${rangeText(this.range)} are in use on this host: ` +
        'fewer sandboxes at once, or a wider LID_SANDBOX_UIDS',
    );
  }

  private letGo(slot: Claimed): void {
    sys.close(slot.usernsFd);
    fs.closeSync(slot.lockFd);
  }
}
