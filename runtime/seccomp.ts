// The seccomp filter every sandbox inherits, written as a classic-BPF program built here in TypeScript (pure: no
// syscalls; runtime/syscalls.ts installs it). It sits on the spawner thread (see sandbox-thread.ts) and so also
// constrains that thread's own later calls: it denies only what neither the spawner nor the jobs need. Jobs already
// lack capabilities, so mount, setns and non-user unshare fail for them anyway; this shuts the kernel surfaces that
// an unprivileged process can still reach and that keep producing escapes (user namespaces, io_uring, bpf, ...).
//
// Hand-written because the job is small and libseccomp would mean a native build; the program is checked by an
// interpreter in seccomp.test.ts.

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

/** x86_64 numbers of the calls denied outright with EPERM. */
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
  // The new mount API: neither the spawner nor a job needs it, and it bypasses nothing we rely on only if absent.
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  mount_setattr: 442,
});

/** Calls whose first argument is a clone-flags word: denied when it asks for a new user namespace. */
export const FLAG_CHECKED_SYSCALLS: Readonly<Record<string, number>> = Object.freeze({ clone: 56, unshare: 272 });

/** clone3 passes its flags in memory, where BPF cannot look: answer ENOSYS so libc falls back to clone. */
export const CLONE3 = 435;

// Classic BPF opcodes (linux/bpf_common.h)
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

// struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARG0_LOW = 16;

type Insn = { code: number; k: number; jt?: string; jf?: string; label?: string };

/** Builds the filter as sock_filter entries: { u16 code; u8 jt; u8 jf; u32 k } little-endian, 8 bytes each. */
export function buildSeccompProgram(): Uint8Array {
  const insns: Insn[] = [
    { code: LD_W_ABS, k: OFFSET_ARCH },
    { code: JEQ_K, k: AUDIT_ARCH_X86_64, jf: 'kill' },
    { code: LD_W_ABS, k: OFFSET_NR },
    { code: JGE_K, k: X32_SYSCALL_BIT, jt: 'deny' },
    { code: JEQ_K, k: CLONE3, jt: 'enosys' },
    ...Object.values(FLAG_CHECKED_SYSCALLS).map((nr) => ({ code: JEQ_K, k: nr, jt: 'check_flags' })),
    ...Object.values(DENIED_SYSCALLS).map((nr) => ({ code: JEQ_K, k: nr, jt: 'deny' })),
    { code: RET_K, k: SECCOMP_RET.ALLOW },
    { label: 'check_flags', code: LD_W_ABS, k: OFFSET_ARG0_LOW },
    { code: JSET_K, k: CLONE_NEWUSER, jt: 'deny' },
    { code: RET_K, k: SECCOMP_RET.ALLOW },
    { label: 'deny', code: RET_K, k: SECCOMP_RET.ERRNO | EPERM },
    { label: 'enosys', code: RET_K, k: SECCOMP_RET.ERRNO | ENOSYS },
    { label: 'kill', code: RET_K, k: SECCOMP_RET.KILL_PROCESS },
  ];
  const at = new Map(insns.flatMap((insn, i) => (insn.label ? [[insn.label, i] as const] : [])));
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    const jump = (label?: string) => {
      if (label === undefined) return 0;
      const offset = at.get(label)! - i - 1; // BPF jumps are relative to the next instruction and only forward
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
