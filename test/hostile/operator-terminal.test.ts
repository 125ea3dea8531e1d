// Hostile: a job reaches the operator's terminal. Under `lid up` or `lid sandbox run` started from a shell, a job
// that inherited the terminal as its controlling tty could write to /dev/tty, and with dev.tty.legacy_tiocsti = 1
// push keystrokes into the operator's root shell with TIOCSTI. Defences: lid-init's setsid (no controlling
// terminal, so /dev/tty gives ENXIO), fds 0-2 on pipes, and TIOCSTI/TIOCLINUX refused by seccomp.
// Each run happens under script(1), so lid has a real pseudo-terminal as its controlling terminal, whose output
// the test reads: a write to /dev/tty shows there, and so do injected keystrokes (the terminal echoes its input).
// The control runs the same probe on the host under the same kind of terminal, and both attacks succeed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { busyboxRootfs } from '../busybox-rootfs.js';
import { describePrivileged } from '../privileged.js';
import { probeBinaryPath } from '../probe-binary.js';

const lidBin = new URL('../../bin/lid.js', import.meta.url).pathname;

/** Runs a shell command under script(1): its terminal's output (what the operator would see), and the probe's. */
function underTerminal(command: string): string {
  const r = spawnSync('script', ['--quiet', '--return', '--command', command, '/dev/null'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return r.stdout;
}

const legacyTiocsti = () => {
  try {
    return fs.readFileSync('/proc/sys/dev/tty/legacy_tiocsti', 'utf8').trim() === '1';
  } catch {
    return true; // kernels before 6.2 have no switch: TIOCSTI always works there
  }
};

describePrivileged("hostile: a job reaches the operator's terminal", () => {
  let rootfs: string;
  let probe: string;
  beforeAll(() => {
    rootfs = busyboxRootfs();
    probe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lid-tty-')), 'probe');
    fs.copyFileSync(probeBinaryPath(), probe);
    fs.chmodSync(probe, 0o755);
  });

  it('cannot write to /dev/tty or push keystrokes into any fd, under `lid sandbox run` in a terminal', () => {
    const out = underTerminal(
      `${process.execPath} ${lidBin} sandbox run --rootfs ${rootfs} --file /probe=${probe} -- /probe tty`,
    );
    expect(out).toMatch(/open_dev_tty ENXIO/);
    expect(out).not.toContain('LID-TTY-LEAK');
    expect(out).not.toContain('LIDINJECT');
    for (const fd of [0, 1, 2]) expect(out).toMatch(new RegExp(`tiocsti_${fd} (EPERM|EBADF)`));
  });

  it('control: the same probe on the host, in the same kind of terminal, reaches it', () => {
    const out = underTerminal(`${probe} tty`);
    expect(out).toMatch(/open_dev_tty OK/);
    expect(out).toContain('LID-TTY-LEAK'); // the write to /dev/tty shows on the terminal
    if (!legacyTiocsti()) {
      console.warn('control for TIOCSTI skipped: dev.tty.legacy_tiocsti is 0 on this kernel, so nobody can inject');
      return;
    }
    expect(out).toMatch(/tiocsti_dev_tty OK/);
    expect(out).toContain('LIDINJECT'); // echoed back by the terminal: the keystrokes went in
  });
});
