// Issue 2, point 1: what a job can see and do. Each assertion is something a tenant's code could try.
import fs from 'node:fs';
import { expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';

describePrivileged('sandbox isolation', () => {
  const h = useSandboxes();

  it('runs the job as PID 1 of its own pid namespace, seeing only its own processes', async () => {
    const r = await h.run({ argv: ['sh', '-c', 'echo $$; ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "'] });
    expect(r.status).toBe('ok');
    const [pid, visible] = r.out.split('\n');
    expect(pid).toBe('1');
    // sh (1) and the pipeline's own processes, nothing of the host's (and not an empty listing)
    const pids = visible!.trim().split(' ').map(Number);
    expect(pids).toContain(1);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(pids.length).toBeLessThan(10);
    for (const p of pids) expect(p).toBeLessThan(10);
  });

  it('gives the job its own hostname', async () => {
    const r = await h.run({ argv: ['hostname'], hostname: 'tenant-box' });
    expect(r.out.trim()).toBe('tenant-box');
  });

  it('gives the job an empty network namespace with only loopback, which is up', async () => {
    const r = await h.run({
      argv: ['sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; ip link show lo'],
    });
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('lo');
    expect(lines[1]).toMatch(/lo:.*UP/);
    expect(r.out).not.toMatch(/eth|ens|veth/);
  });

  it("shows only the image's files, nothing of the host's", async () => {
    const marker = `/tmp/lid-host-marker-${process.pid}`;
    fs.writeFileSync(marker, 'host secret');
    try {
      const r = await h.run({
        argv: ['sh', '-c', `ls /; test -e ${marker} && echo LEAK; test -e /work && echo LEAK; cat /etc/image-marker`],
      });
      expect(r.out).not.toContain('LEAK');
      expect(r.out).toContain('busybox test image');
      expect(r.out.split('\n').slice(0, -2).sort()).toEqual(['bin', 'dev', 'etc', 'proc', 'root', 'tmp']);
    } finally {
      fs.rmSync(marker);
    }
  });

  it('runs as an unprivileged uid with no capabilities, no_new_privs and a seccomp filter', async () => {
    const r = await h.run({
      argv: [
        'sh',
        '-c',
        'id -u; id -g; grep -E "^(CapInh|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):" /proc/self/status',
      ],
      uid: 1234,
      gid: 2345,
    });
    const [uid, gid, ...status] = r.out.trim().split('\n');
    expect([uid, gid]).toEqual(['1234', '2345']);
    const fields = Object.fromEntries(status.map((l) => l.split(/:\s+/)));
    expect(fields).toEqual({
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
      NoNewPrivs: '1',
      Seccomp: '2',
      Seccomp_filters: '2', // the spawner thread's program and lid-init's (runtime/seccomp.ts)
    });
  });

  it('starts the job in a session of its own, with no controlling terminal', async () => {
    // /proc/self/stat: pid (comm) state ppid pgrp session tty_nr ...
    const r = await h.run({ argv: ['sh', '-c', 'cat /proc/$$/stat'] });
    const [, , , , pgrp, session, ttyNr] = r.out
      .replace(/\(.*\)/, 'comm')
      .trim()
      .split(' ');
    expect({ pgrp, session, ttyNr }).toEqual({ pgrp: '1', session: '1', ttyNr: '0' });
  });

  it('sets rlimits: no core dumps, 4096 files, an 8 MiB stack, no file beyond the disk', async () => {
    const r = await h.run({
      argv: ['sh', '-c', 'ulimit -c; ulimit -Hc; ulimit -n; ulimit -Hn; ulimit -s; ulimit -f'],
      limits: { diskBytes: 64 * 1024 * 1024 },
    });
    const [core, coreHard, nofile, nofileHard, stackKiB, fsizeBlocks] = r.out.trim().split('\n').map(Number);
    expect({ core, coreHard, nofile, nofileHard, stackKiB }).toEqual({
      core: 0,
      coreHard: 0,
      nofile: 4096,
      nofileHard: 4096,
      stackKiB: 8192,
    });
    expect(fsizeBlocks! * 512).toBeGreaterThanOrEqual(64 * 1024 * 1024); // just above the disk limit
    expect(fsizeBlocks! * 512).toBeLessThanOrEqual(65 * 1024 * 1024);
    const custom = await h.run({
      argv: ['sh', '-c', 'ulimit -n; ulimit -s'],
      rlimits: { nofile: 64, stack: 1024 * 1024 },
    });
    expect(custom.out.trim().split('\n')).toEqual(['64', '1024']);
  });

  it('denies user namespaces, keyctl, bpf, perf_event_open, userfaultfd, io_uring, ptrace, kexec, modules and mount', async () => {
    const r = await h.run({ argv: ['/probe', 'syscalls'], files: [h.probeFile()] });
    const results = Object.fromEntries(
      r.out
        .trim()
        .split('\n')
        .map((l) => l.split(' ')),
    );
    for (const call of [
      'unshare_user',
      'clone_user',
      'keyctl',
      'bpf',
      'perf_event_open',
      'userfaultfd',
      'io_uring_setup',
      'ptrace',
      'kexec_load',
      'init_module',
      'finit_module',
      'delete_module',
      'mount',
    ]) {
      expect(results[call], call).toBe('EPERM');
    }
    expect(results.getpid).toBe('OK'); // the probe itself worked: the EPERMs are answers, not a broken probe
    const m = await h.run({ argv: ['sh', '-c', 'mount -t tmpfs none /tmp 2>&1; echo status=$?'] });
    expect(m.out).toMatch(/status=[1-9]/);
  });

  it('gives the job its own /proc with kcore, sysrq-trigger and keys masked and /proc/sys read-only', async () => {
    // Masked paths read as /dev/null (a kernel built without one of them has nothing to mask there).
    const masked = ['/proc/kcore', '/proc/sysrq-trigger', '/proc/keys'].filter((p) => fs.existsSync(p));
    expect(masked).toContain('/proc/keys');
    const script = masked.map((p) => `echo ${p} $(stat -c %t:%T ${p}) $(wc -c < ${p})`).join('; ');
    const r = await h.run({ argv: ['sh', '-c', `${script}; grep -E " /proc/sys " /proc/mounts`] });
    const lines = r.out.trim().split('\n');
    for (const [i, p] of masked.entries()) expect(lines[i]).toBe(`${p} 1:3 0`);
    expect(lines.at(-1)).toMatch(/ ro,/);
  });

  it('gives the job a minimal /dev: null, zero, full, random, urandom, tty, pts and shm', async () => {
    const r = await h.run({
      argv: [
        'sh',
        '-c',
        'ls /dev; echo hi > /dev/null && head -c 4 /dev/zero | wc -c; head -c 8 /dev/urandom | wc -c; echo x > /dev/full || echo full',
      ],
    });
    const lines = r.out.trim().split('\n');
    expect(lines.slice(0, 8).sort()).toEqual(['full', 'null', 'pts', 'random', 'shm', 'tty', 'urandom', 'zero']);
    expect(lines.slice(8).map((l) => l.trim())).toEqual(['4', '8', 'full']);
  });

  it('mounts everything nosuid, and only the sandbox tree is visible (pivot_root, old root detached)', async () => {
    const r = await h.run({ argv: ['cat', '/proc/self/mountinfo'] });
    const mounts = r.out
      .trim()
      .split('\n')
      .map((l) => {
        const [left, right] = l.split(' - ');
        return { point: left!.split(' ')[4]!, opts: left!.split(' ')[5]!, fstype: right!.split(' ')[0]! };
      });
    expect(mounts[0]).toMatchObject({ point: '/', fstype: 'overlay' });
    for (const m of mounts) expect(m.opts.split(','), m.point).toContain('nosuid');
    const points = new Set(mounts.map((m) => m.point));
    for (const p of points) expect(p).toMatch(/^\/(|dev(\/pts|\/shm)?|proc(\/.*)?)$/);
  });

  it('passes only the environment it was given', async () => {
    process.env.LID_TEST_SECRET = 'must-not-leak';
    try {
      const r = await h.run({ argv: ['env'], env: { GREETING: 'hello' } });
      expect(r.out.trim().split('\n').sort()).toEqual([
        'GREETING=hello',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ]);
    } finally {
      delete process.env.LID_TEST_SECRET;
    }
  });

  it('leaves the job only fds 0, 1 and 2', async () => {
    const r = await h.run({ argv: ['/probe', 'fds'], files: [h.probeFile()] });
    expect(r.out.trim().split('\n')).toEqual(['0', '1', '2']);
  });
});
