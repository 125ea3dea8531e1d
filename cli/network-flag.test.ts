// `--network` on `lid run` and `lid sandbox run`, through the real commands: each form becomes the request's (or the
// RunSpec's) `network`, a flag left out leaves the default to the gateway or the runtime ("none"), and a bad value
// stops lid with exit code 125 and a message naming the flag and what it takes, before anything is sent or run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { RunSpecSchema } from '../common/run-spec.js';
import type { JobFlags } from './run-flags.js';
import { jobRequestOf, runCommand } from './run.js';
import { buildSpec, sandboxCommand } from './sandbox-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-network-flag-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const config = loadConfig({ LID_DATA_DIR: tmp, LOG_LEVEL: 'silent' });
const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;

/** The flags a command parsed from `args`, its action replaced so that nothing runs. */
async function parsed(command: Command, args: string[]): Promise<{ argv: string[]; flags: JobFlags }> {
  let got: { argv: string[]; flags: JobFlags } | undefined;
  command.exitOverride().configureOutput({ writeErr: () => {} });
  command.action((argv: string[], flags: JobFlags) => {
    got = { argv, flags };
  });
  await command.parseAsync(args, { from: 'user' });
  return got!;
}

const sandboxRun = () => sandboxCommand(config).commands.find((c) => c.name() === 'run')!;

const FORMS = [
  ['none', 'none'],
  ['internet', 'internet'],
  ['allow=pypi.org', { allow: ['pypi.org'] }],
  [
    'allow=pypi.org, *.example.com:443,203.0.113.0/24,198.51.100.7:8000-8100',
    { allow: ['pypi.org', '*.example.com:443', '203.0.113.0/24', '198.51.100.7:8000-8100'] },
  ],
] as const;

describe('lid run --network', () => {
  it.each(FORMS)('--network %s is the request’s network', async (flag, network) => {
    const { argv, flags } = await parsed(runCommand(config), ['--image', 'python', '--network', flag, '--', 'true']);
    expect(jobRequestOf({ ...flags, image: 'python' }, argv)).toMatchObject({ network });
  });

  it('leaves network out when the flag is left out (the gateway’s default: none)', async () => {
    const { argv, flags } = await parsed(runCommand(config), ['--image', 'python', '--', 'true']);
    expect(jobRequestOf({ ...flags, image: 'python' }, argv)).not.toHaveProperty('network');
  });
});

describe('lid sandbox run --network', () => {
  it.each(FORMS)('--network %s is the RunSpec’s network', async (flag, network) => {
    const { argv, flags } = await parsed(sandboxRun(), ['--rootfs', '/', '--network', flag, '--', 'true']);
    expect(RunSpecSchema.parse(buildSpec(flags, argv, config)).network).toEqual(network);
  });

  it('runs with none when the flag is left out', async () => {
    const { argv, flags } = await parsed(sandboxRun(), ['--rootfs', '/', '--', 'true']);
    expect(RunSpecSchema.parse(buildSpec(flags, argv, config)).network).toBe('none');
  });
});

describe('a bad --network', () => {
  it.each([
    ['wifi', '--network must be none, internet or allow=LIST (e.g. allow=pypi.org,*.example.com:443)'],
    ['allow=', '--network allow= needs at least one entry'],
    ['allow=pypi.org,::1', '"::1": IPv6 is off in Lid sandboxes; name IPv4 addresses or domains'],
    ['allow=pypi.org:0', '"pypi.org:0": the port must be 1-65535, or a range LOW-HIGH such as 8000-8100'],
    ['allow=10.0.0.0/33', '"10.0.0.0/33": the prefix after / must be 0-32'],
    ['Internet', '--network must be none, internet or allow=LIST'],
  ])('refuses --network %s, saying why', async (flag, why) => {
    for (const [command, args] of [
      [runCommand(config), ['--image', 'python', '--network', flag, '--', 'true']],
      [sandboxRun(), ['--rootfs', '/', '--network', flag, '--', 'true']],
    ] as const) {
      await expect(parsed(command, [...args])).rejects.toMatchObject({
        code: 'commander.invalidArgument',
        message: expect.stringContaining(`option '--network <policy>' argument '${flag}' is invalid. ${why}`),
      });
    }
  });

  it('makes the real lid exit 125 with the message, sending and running nothing', () => {
    // LID_URL names a port nothing listens on: had lid got past the flags it would say it cannot connect.
    const env = { ...process.env, LID_DATA_DIR: tmp, LID_URL: 'http://127.0.0.1:9', LID_API_KEY: 'lid_x' };
    for (const args of [
      ['run', '--image', 'python', '--network', 'wifi', '--', 'true'],
      ['sandbox', 'run', '--rootfs', '/', '--network', 'allow=::1', '--', 'true'],
    ]) {
      const r = spawnSync(process.execPath, [lidBin, ...args], { encoding: 'utf8', env, timeout: 60_000 });
      expect(r.status, r.stderr).toBe(125);
      expect(r.stderr).toMatch(/option '--network <policy>' argument '[^']+' is invalid\./);
      expect(r.stderr).not.toMatch(/connect|ECONNREFUSED/);
    }
  });
});
