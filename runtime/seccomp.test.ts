import { describe, expect, it } from 'vitest';
import {
  AF_VSOCK,
  AUDIT_ARCH_X86_64,
  buildSeccompProgram,
  CLONE3,
  DENIED_IOCTLS,
  DENIED_SYSCALLS,
  INIT_DENIED_SYSCALLS,
  IOCTL,
  PERSONALITY,
  SECCOMP_RET,
  SOCKET,
} from './seccomp.js';

/** A small classic-BPF interpreter, enough for the opcodes the filter uses, to check its decisions without a kernel. */
function evaluate(program: Uint8Array, data: { nr: number; arch?: number; arg0?: number; arg1?: number }): number {
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const mem = new DataView(new ArrayBuffer(64));
  mem.setInt32(0, data.nr, true);
  mem.setUint32(4, data.arch ?? AUDIT_ARCH_X86_64, true);
  mem.setUint32(16, data.arg0 ?? 0, true);
  mem.setUint32(24, data.arg1 ?? 0, true);
  let acc = 0;
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    if (code === 0x20) acc = mem.getUint32(k, true);
    else if (code === 0x15) pc += acc === k ? jt : jf;
    else if (code === 0x35) pc += acc >= k ? jt : jf;
    else if (code === 0x45) pc += (acc & k) !== 0 ? jt : jf;
    else if (code === 0x06) return k;
    else throw new Error(`unexpected opcode ${code}`);
  }
  throw new Error('program fell off the end');
}

const EPERM = SECCOMP_RET.ERRNO | 1;

/** What a job gets from the two stacked programs: the kernel takes the most restrictive answer. */
function evaluateStack(programs: Uint8Array[], data: Parameters<typeof evaluate>[1]): number {
  const rank = (action: number) => (action === SECCOMP_RET.KILL_PROCESS ? 0 : action === SECCOMP_RET.ALLOW ? 2 : 1); // kill > errno > allow
  return programs.map((p) => evaluate(p, data)).sort((a, b) => rank(a) - rank(b))[0]!;
}

describe('seccomp policy (spawner + init programs, as a job has them)', () => {
  const programs = [buildSeccompProgram('spawner'), buildSeccompProgram('init')];
  const job = (data: Parameters<typeof evaluate>[1]) => evaluateStack(programs, data);

  it.each(Object.entries({ ...DENIED_SYSCALLS, ...INIT_DENIED_SYSCALLS }))('denies %s with EPERM', (_name, nr) => {
    expect(job({ nr })).toBe(EPERM);
  });

  it('allows ordinary calls (read, write, execve, getpid, open, socket, ioctl)', () => {
    for (const nr of [0, 1, 59, 39, 2, 257]) expect(job({ nr })).toBe(SECCOMP_RET.ALLOW);
  });

  it('leaves mount, pivot_root, chroot and setns to the init program: the spawner thread needs them', () => {
    const [spawner, init] = programs as [Uint8Array, Uint8Array];
    for (const nr of Object.values(INIT_DENIED_SYSCALLS)) {
      expect(evaluate(spawner, { nr })).toBe(SECCOMP_RET.ALLOW);
      expect(evaluate(init, { nr })).toBe(EPERM);
    }
    expect(evaluate(init, { nr: 0 })).toBe(SECCOMP_RET.ALLOW);
    expect(evaluate(init, { nr: 0, arch: 0x40000003 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  it('denies TIOCSTI and TIOCLINUX on any fd, and no other ioctl', () => {
    for (const request of Object.values(DENIED_IOCTLS)) expect(job({ nr: IOCTL, arg0: 0, arg1: request })).toBe(EPERM);
    const TCGETS = 0x5401;
    const FIONREAD = 0x541b;
    for (const request of [TCGETS, FIONREAD]) expect(job({ nr: IOCTL, arg1: request })).toBe(SECCOMP_RET.ALLOW);
  });

  it('denies AF_VSOCK sockets and allows the usual families', () => {
    expect(job({ nr: SOCKET, arg0: AF_VSOCK })).toBe(EPERM);
    for (const family of [1, 2, 10, 16]) expect(job({ nr: SOCKET, arg0: family })).toBe(SECCOMP_RET.ALLOW);
  });

  it('allows personality only to read it or set the default', () => {
    expect(job({ nr: PERSONALITY, arg0: 0 })).toBe(SECCOMP_RET.ALLOW);
    expect(job({ nr: PERSONALITY, arg0: 0xffffffff })).toBe(SECCOMP_RET.ALLOW);
    const ADDR_NO_RANDOMIZE = 0x0040000;
    const READ_IMPLIES_EXEC = 0x0400000;
    for (const value of [ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, 8])
      expect(job({ nr: PERSONALITY, arg0: value })).toBe(EPERM);
  });

  it('denies unshare and clone only when they ask for a user namespace', () => {
    const NEWUSER = 0x10000000;
    const NEWNS = 0x20000;
    expect(job({ nr: 272, arg0: NEWUSER })).toBe(EPERM);
    expect(job({ nr: 272, arg0: NEWUSER | NEWNS })).toBe(EPERM);
    expect(job({ nr: 272, arg0: NEWNS })).toBe(SECCOMP_RET.ALLOW);
    expect(job({ nr: 56, arg0: NEWUSER | 17 })).toBe(EPERM);
    expect(job({ nr: 56, arg0: 0x1200011 })).toBe(SECCOMP_RET.ALLOW); // glibc fork's flags
  });

  it('answers clone3 with ENOSYS so libc falls back to clone, where flags are visible', () => {
    expect(job({ nr: CLONE3 })).toBe(SECCOMP_RET.ERRNO | 38);
  });

  it('kills a process that calls in through another architecture, and refuses x32 calls', () => {
    expect(job({ nr: 0, arch: 0x40000003 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(job({ nr: 0x40000000 | 1 })).toBe(EPERM);
  });
});
