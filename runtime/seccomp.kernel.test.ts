// The seccomp policy against the real kernel, with full privileges: a root helper (the test probe, run as root with
// every capability this machine grants, in throwaway mount, pid and network namespaces) installs the two programs a
// job gets, in the order it gets them, and tries every call the policy denies. Each must answer EPERM (clone3:
// ENOSYS, so libc falls back to clone, where the flags are visible), while the same calls without the filter answer
// something else: the control that shows each attempt really reached the kernel, so no EPERM here is the probe's
// own doing. Calls the policy allows must still work under it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';
import { probeBinaryPath } from '../test/probe-binary.js';
import { buildSeccompProgram, DENIED_SYSCALLS, INIT_DENIED_SYSCALLS } from './seccomp.js';

/** What the probe tried, beyond the plain syscall names of the two tables. */
const ARGUMENT_CHECKS = [
  'ioctl_TIOCSTI',
  'ioctl_TIOCLINUX',
  'socket_vsock',
  'personality_addr_no_randomize',
  'unshare_user',
  'clone_user',
];
const ALLOWED = ['ioctl_TCGETS', 'socket_unix', 'personality_query', 'getpid'];

function probe(...filters: string[]): Record<string, string> {
  // Throwaway namespaces: even an unfiltered call that succeeded would change nothing of the host's.
  const out = execFileSync(
    'unshare',
    ['--mount', '--pid', '--fork', '--net', '--mount-proc', probeBinaryPath(), 'seccomp', ...filters],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((line) => line.split(' ') as [string, string]),
  );
}

describePrivileged('the seccomp policy on a real kernel, as root', () => {
  it('denies every call it lists, each of which the same root process could make without it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-seccomp-'));
    try {
      const spawner = path.join(dir, 'spawner.bpf');
      const init = path.join(dir, 'init.bpf');
      fs.writeFileSync(spawner, buildSeccompProgram('spawner'));
      fs.writeFileSync(init, buildSeccompProgram('init'));
      const filtered = probe(spawner, init);
      const unfiltered = probe();
      const denied = [...Object.keys(DENIED_SYSCALLS), ...Object.keys(INIT_DENIED_SYSCALLS), ...ARGUMENT_CHECKS];
      for (const call of denied) {
        expect(filtered[call], `${call} under the filter`).toBe('EPERM');
        expect(unfiltered[call], `${call} without the filter (the control)`).toBeDefined();
        expect(unfiltered[call], `${call} without the filter (the control)`).not.toBe('EPERM');
      }
      expect(filtered.clone3).toBe('ENOSYS');
      expect(unfiltered.clone3).not.toBe('ENOSYS');
      for (const call of ALLOWED) expect(filtered[call], call).toBe(unfiltered[call]);
      expect(filtered.getpid).toBe('OK');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses mount, pivot_root, chroot and setns only in the init program: the spawner thread needs them', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-seccomp-'));
    try {
      const spawner = path.join(dir, 'spawner.bpf');
      fs.writeFileSync(spawner, buildSeccompProgram('spawner'));
      const spawnerOnly = probe(spawner);
      for (const call of Object.keys(INIT_DENIED_SYSCALLS)) expect(spawnerOnly[call], call).not.toBe('EPERM');
      expect(spawnerOnly.bpf).toBe('EPERM');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
