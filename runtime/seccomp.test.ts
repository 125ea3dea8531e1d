import { describe, expect, it } from 'vitest';
import { AUDIT_ARCH_X86_64, buildSeccompProgram, CLONE3, DENIED_SYSCALLS, SECCOMP_RET } from './seccomp.js';

/** A small classic-BPF interpreter, enough for the opcodes the filter uses, to check its decisions without a kernel. */
function evaluate(program: Uint8Array, data: { nr: number; arch?: number; arg0?: number }): number {
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const mem = new DataView(new ArrayBuffer(64));
  mem.setInt32(0, data.nr, true);
  mem.setUint32(4, data.arch ?? AUDIT_ARCH_X86_64, true);
  mem.setUint32(16, data.arg0 ?? 0, true);
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

describe('seccomp filter', () => {
  const program = buildSeccompProgram();

  it.each(Object.entries(DENIED_SYSCALLS))('denies %s with EPERM', (_name, nr) => {
    expect(evaluate(program, { nr })).toBe(EPERM);
  });

  it('allows ordinary calls (read, write, execve, mount for the spawner, setns)', () => {
    for (const nr of [0, 1, 59, 165, 308, 39]) expect(evaluate(program, { nr })).toBe(SECCOMP_RET.ALLOW);
  });

  it('denies unshare and clone only when they ask for a user namespace', () => {
    const NEWUSER = 0x10000000;
    const NEWNS = 0x20000;
    expect(evaluate(program, { nr: 272, arg0: NEWUSER })).toBe(EPERM);
    expect(evaluate(program, { nr: 272, arg0: NEWUSER | NEWNS })).toBe(EPERM);
    expect(evaluate(program, { nr: 272, arg0: NEWNS })).toBe(SECCOMP_RET.ALLOW);
    expect(evaluate(program, { nr: 56, arg0: NEWUSER | 17 })).toBe(EPERM);
    expect(evaluate(program, { nr: 56, arg0: 0x1200011 })).toBe(SECCOMP_RET.ALLOW); // glibc fork's flags
  });

  it('answers clone3 with ENOSYS so libc falls back to clone, where flags are visible', () => {
    expect(evaluate(program, { nr: CLONE3 })).toBe(SECCOMP_RET.ERRNO | 38);
  });

  it('kills a process that calls in through another architecture, and refuses x32 calls', () => {
    expect(evaluate(program, { nr: 0, arch: 0x40000003 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(evaluate(program, { nr: 0x40000000 | 1 })).toBe(EPERM);
  });
});
