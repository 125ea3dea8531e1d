// The `lid sandbox run` contract, end to end through the real command (bin/lid.js), as scripts will use it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { busyboxRootfs } from '../test/busybox-rootfs.js';
import { describePrivileged } from '../test/privileged.js';
import { probeBinary } from '../test/probe-binary.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;

function lid(args: string[], opts: { env?: NodeJS.ProcessEnv; extraFd?: number } = {}) {
  const stdio: (string | number)[] = ['ignore', 'pipe', 'pipe'];
  if (opts.extraFd !== undefined) stdio.push('ignore', 'ignore', opts.extraFd); // arrives as fd 5, not close-on-exec
  const r = spawnSync(process.execPath, [lidBin, ...args], {
    encoding: 'utf8',
    env: opts.env ?? process.env,
    stdio: stdio as never,
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describePrivileged('lid sandbox run', () => {
  let rootfs: string;
  let probe: string;
  beforeAll(() => {
    rootfs = busyboxRootfs();
    probe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lid-cli-')), 'probe');
    fs.writeFileSync(probe, probeBinary(), { mode: 0o755 });
  });

  it("passes the job's output through and exits with its code", () => {
    const r = lid(['sandbox', 'run', '--rootfs', rootfs, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, out: 'out\n' });
    expect(r.err).toContain('err\n');
  });

  it('exits 128+signal when the job is killed by a signal, and 124 on timeout', () => {
    expect(lid(['sandbox', 'run', '--rootfs', rootfs, '--file', `/probe=${probe}`, '--', '/probe', 'segv']).code).toBe(
      139,
    );
    const t = lid(['sandbox', 'run', '--rootfs', rootfs, '--timeout', '300ms', '--', 'sleep', '10']);
    expect(t.code).toBe(124);
    expect(t.err).toMatch(/lid: timed out/);
  });

  it('prints exactly one JSON RunResult with --json and exits 0 whenever the sandbox ran', () => {
    const r = lid([
      'sandbox',
      'run',
      '--json',
      '--rootfs',
      rootfs,
      '--memory',
      '64m',
      '--cpus',
      '0.5',
      '--pids',
      '32',
      '--output-limit',
      '1k',
      '--disk',
      '16m',
      '--',
      'sh',
      '-c',
      'printf "\\377\\376"; echo fine >&2; exit 5',
    ]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]!);
    expect(result).toMatchObject({
      status: 'nonzero_exit',
      exitCode: 5,
      stdout: null,
      stdoutBase64: '//4=',
      stderr: 'fine\n',
      stdoutTruncated: false,
    });
    expect(Object.keys(result.usage).sort()).toEqual([
      'cpuSystemMs',
      'cpuUserMs',
      'memoryPeakBytes',
      'oomKilled',
      'pidsPeak',
      'wallMs',
    ]);
    expect(Object.keys(result.timings).sort()).toEqual(['runMs', 'setupMs', 'teardownMs']);
  });

  it('places --file and --env, and starts in --workdir', () => {
    const r = lid([
      'sandbox',
      'run',
      '--rootfs',
      rootfs,
      '--env',
      'A=1',
      '--env',
      'B=x=y',
      '--file',
      `/app/probe=${probe}`,
      '--workdir',
      '/app',
      '--',
      'sh',
      '-c',
      'echo $A $B; pwd; ls -l probe | cut -c1-10',
    ]);
    expect(r.out).toBe('1 x=y\n/app\n-rwxr-xr-x\n');
  });

  it('leaks neither the environment nor inherited descriptors into the job', () => {
    const fd = fs.openSync(probe, 'r');
    try {
      const r = lid(
        ['sandbox', 'run', '--rootfs', rootfs, '--file', `/probe=${probe}`, '--', 'sh', '-c', 'env; /probe fds'],
        { env: { ...process.env, LID_TEST_SECRET: 'x' }, extraFd: fd },
      );
      expect(r.out.split('\n').filter(Boolean).sort()).toEqual(
        ['0', '1', '2', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PWD=/', 'SHLVL=1'].sort(),
      );
    } finally {
      fs.closeSync(fd);
    }
  });

  it('answers bad input with a message that says what to fix, and exit 125 when the sandbox could not run', () => {
    const size = lid(['sandbox', 'run', '--rootfs', rootfs, '--memory', '12q', '--', 'true']);
    expect(size.code).toBe(125);
    expect(size.err).toMatch(/"12q" is not a size/);
    const noRoot = lid(['sandbox', 'run', '--', 'true']);
    expect(noRoot).toMatchObject({ code: 125 });
    expect(noRoot.err).toMatch(/--rootfs DIR/);
    const noCmd = lid(['sandbox', 'run', '--rootfs', rootfs, '--json', '--', 'no-such-command']);
    expect(noCmd.code).toBe(125);
    expect(JSON.parse(noCmd.out).error).toMatchObject({
      code: 'invalid_spec',
      message: expect.stringMatching(/"no-such-command" was not found/),
    });
    const missing = lid(['sandbox', 'run', '--rootfs', '/no/such/dir', '--', 'true']);
    expect(missing).toMatchObject({ code: 125, err: expect.stringMatching(/\/no\/such\/dir is not a directory/) });
    const limit = lid(['sandbox', 'run', '--rootfs', rootfs, '--pids', '0', '--', 'true']);
    expect(limit).toMatchObject({ code: 125, err: expect.stringMatching(/limits.pids: pids must be at least 1/) });
    const unknown = lid(['sandbox', 'run', '--rootfs', rootfs, '--no-such-flag', '--', 'true']);
    expect(unknown).toMatchObject({ code: 125, err: expect.stringMatching(/unknown option '--no-such-flag'/) });
    const help = lid(['sandbox', 'run', '--help']);
    expect(help).toMatchObject({ code: 0, out: expect.stringMatching(/Exit status/) });
  });

  it('has --help on every subcommand', () => {
    for (const cmd of [
      [],
      ['sandbox'],
      ['sandbox', 'run'],
      ['up'],
      ['gateway'],
      ['worker'],
      ['run'],
      ['images'],
      ['tenants'],
    ]) {
      const r = lid([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.out, cmd.join(' ')).toMatch(/^Usage: lid/);
    }
  });
});
