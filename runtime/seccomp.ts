// The seccomp policy of every job, written as classic-BPF programs built here in TypeScript (pure: no syscalls).
//
// Two programs stack to make the policy, because a filter is inherited by every child and cannot be removed:
//   'spawner'  installed once on each spawner thread (runtime/sandbox-thread.ts) and inherited by every lid-init and
//              job for free: everything but the few calls the spawner itself makes to build a sandbox.
//   'init'     installed by lid-init as its very last step before exec (runtime/init/lid-init.c): mount, open_tree,
//              mount_setattr, pivot_root, chroot and setns, which the spawner and lid-init need and a job must not have. It is small on
//              purpose: each install costs the kernel a JIT and a per-syscall cache pass, in every sandbox (about
//              80 us for the whole policy in one program, measured here; a few for this one).
// A job is under both; seccomp.kernel.test.ts installs both, in that order, on a real kernel and checks every call.
//
// Jobs already lack every capability, so most of what is denied here would fail for them anyway; the filter is the
// second wall, and it shuts the kernel surfaces that an unprivileged process can still reach and that keep producing
// escapes (user namespaces, io_uring, bpf, userfaultfd, ...), plus a few argument-level holes: TIOCSTI/TIOCLINUX
// (typing into a terminal), AF_VSOCK sockets (a channel to the hypervisor), and personality flags other than the
// default (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE weaken the job's own exploit defences).
//
// Hand-written because the job is small and libseccomp would mean a native build; the programs are checked by an
// interpreter in seccomp.test.ts and against the real kernel in seccomp.kernel.test.ts.

export const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;

export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
} as const;

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

/** x86_64 numbers of the calls the spawner thread's program denies outright with EPERM. */
export const DENIED_SYSCALLS: Readonly<Record<string, number>> = Object.freeze({
  ptrace: 101,
  process_vm_readv: 310,
  process_vm_writev: 311,
  keyctl: 250,
  add_key: 248,
  request_key: 249,
  bpf: 321,
  perf_event_open: 298,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  kexec_load: 246,
  kexec_file_load: 320,
  init_module: 175,
  finit_module: 313,
  delete_module: 176,
  open_by_handle_at: 304,
  name_to_handle_at: 303,
  acct: 163,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  syslog: 103,
  uselib: 134,
  lookup_dcookie: 212,
  quotactl: 179,
  iopl: 172,
  ioperm: 173,
  // The new mount API, but for the two calls the spawner makes idmapped layers with (in INIT_DENIED_SYSCALLS).
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
});

/**
 * What the 'init' program denies: the calls the spawner thread makes itself (mounts, idmapped layers, pivot_root, the
 * chroot and setns of its way back to the host) and lid-init's setns into the user namespace. Jobs have no capability
 * for them; denied so that a capability leak alone would not be enough.
 */
export const INIT_DENIED_SYSCALLS: Readonly<Record<string, number>> = Object.freeze({
  mount: 165,
  umount2: 166,
  pivot_root: 155,
  chroot: 161,
  setns: 308,
  open_tree: 428,
  mount_setattr: 442,
});

/** Calls whose first argument is a clone-flags word: denied when it asks for a new user namespace. */
export const FLAG_CHECKED_SYSCALLS: Readonly<Record<string, number>> = Object.freeze({ clone: 56, unshare: 272 });

/** clone3 passes its flags in memory, where BPF cannot look: answer ENOSYS so libc falls back to clone. */
export const CLONE3 = 435;

export const IOCTL = 16;
export const SOCKET = 41;
export const PERSONALITY = 135;
/** ioctl requests refused whatever the fd: both push input into a terminal, which may be the operator's. */
export const DENIED_IOCTLS: Readonly<Record<string, number>> = Object.freeze({ TIOCSTI: 0x5412, TIOCLINUX: 0x541c });
export const AF_VSOCK = 40;
/** personality(2) values allowed: PER_LINUX (the default) and 0xffffffff, which only asks for the current one. */
export const ALLOWED_PERSONALITIES: readonly number[] = Object.freeze([0, 0xffffffff]);

// Classic BPF opcodes (linux/bpf_common.h)
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

// struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARG0_LOW = 16; // args are u64; x86_64 is little-endian, and these arguments are 32-bit in the kernel
const OFFSET_ARG1_LOW = 24;

type Insn = { code: number; k: number; jt?: string; jf?: string; label?: string };

/** The checks both programs start with: the x86_64 ABI only (any other kills), and no x32 calls. */
const PROLOGUE: Insn[] = [
  { code: LD_W_ABS, k: OFFSET_ARCH },
  { code: JEQ_K, k: AUDIT_ARCH_X86_64, jf: 'kill' },
  { code: LD_W_ABS, k: OFFSET_NR },
  { code: JGE_K, k: X32_SYSCALL_BIT, jt: 'deny' },
];

/** Shared returns; the first, deny, is also where a program falls through to unless it returns earlier. */
const ENDINGS: Insn[] = [
  { label: 'deny', code: RET_K, k: SECCOMP_RET.ERRNO | EPERM },
  { label: 'allow', code: RET_K, k: SECCOMP_RET.ALLOW },
  { label: 'enosys', code: RET_K, k: SECCOMP_RET.ERRNO | ENOSYS },
  { label: 'kill', code: RET_K, k: SECCOMP_RET.KILL_PROCESS },
];

function spawnerProgram(): Insn[] {
  return [
    ...PROLOGUE,
    { code: JEQ_K, k: CLONE3, jt: 'enosys' },
    ...Object.values(FLAG_CHECKED_SYSCALLS).map((nr) => ({ code: JEQ_K, k: nr, jt: 'check_flags' })),
    { code: JEQ_K, k: IOCTL, jt: 'check_ioctl' },
    { code: JEQ_K, k: SOCKET, jt: 'check_socket' },
    { code: JEQ_K, k: PERSONALITY, jt: 'check_personality' },
    ...Object.values(DENIED_SYSCALLS).map((nr) => ({ code: JEQ_K, k: nr, jt: 'deny' })),
    { code: RET_K, k: SECCOMP_RET.ALLOW },
    { label: 'check_flags', code: LD_W_ABS, k: OFFSET_ARG0_LOW },
    { code: JSET_K, k: CLONE_NEWUSER, jt: 'deny', jf: 'allow' },
    { label: 'check_ioctl', code: LD_W_ABS, k: OFFSET_ARG1_LOW },
    ...Object.values(DENIED_IOCTLS).map((request) => ({ code: JEQ_K, k: request, jt: 'deny' })),
    { code: RET_K, k: SECCOMP_RET.ALLOW },
    { label: 'check_socket', code: LD_W_ABS, k: OFFSET_ARG0_LOW },
    { code: JEQ_K, k: AF_VSOCK, jt: 'deny', jf: 'allow' },
    { label: 'check_personality', code: LD_W_ABS, k: OFFSET_ARG0_LOW },
    ...ALLOWED_PERSONALITIES.map((value) => ({ code: JEQ_K, k: value, jt: 'allow' })),
    ...ENDINGS, // any other personality falls through to deny
  ];
}

function initProgram(): Insn[] {
  return [
    ...PROLOGUE,
    ...Object.values(INIT_DENIED_SYSCALLS).map((nr) => ({ code: JEQ_K, k: nr, jt: 'deny' })),
    { code: RET_K, k: SECCOMP_RET.ALLOW },
    ...ENDINGS,
  ];
}

/** Assembles instructions into sock_filter entries: { u16 code; u8 jt; u8 jf; u32 k } little-endian, 8 bytes each. */
function assemble(insns: Insn[]): Uint8Array {
  const at = new Map(insns.flatMap((insn, i) => (insn.label ? [[insn.label, i] as const] : [])));
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const jump = (label?: string) => {
      if (label === undefined) return 0;
      const target = at.get(label);
      if (target === undefined) throw new Error(`seccomp jump to unknown label ${label}`);
      const offset = target - i - 1; // BPF jumps are relative to the next instruction and only forward
      if (offset < 0 || offset > 255) throw new Error(`seccomp jump to ${label} out of range`);
      return offset;
    };
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(jump(insn.jt), i * 8 + 2);
    out.writeUInt8(jump(insn.jf), i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** One of the two programs whose stack is the job's seccomp policy (see the top of this file). */
export function buildSeccompProgram(part: 'spawner' | 'init'): Uint8Array {
  return assemble(part === 'spawner' ? spawnerProgram() : initProgram());
}
