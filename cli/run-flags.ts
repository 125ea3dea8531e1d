// The job flags `lid sandbox run` and `lid run` share (limits, environment, files, working directory, network),
// parsed strictly: a bad size, duration or network is refused by name before anything runs.
import fs from 'node:fs';
import { type Command, Option } from 'commander';
import { LidError } from '../common/errors.js';
import { type NetworkRequest, parseNetworkFlag } from '../common/network-policy.js';
import type { RunSpecInput } from '../common/run-spec.js';
import { asDuration, asNumber, asOption, asSize } from './option-parsers.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export interface JobFlags {
  memory?: number;
  cpus?: number;
  pids?: number;
  timeout?: number;
  outputLimit?: number;
  disk?: number;
  env: string[];
  file: string[];
  workdir?: string;
  network?: NetworkRequest;
}

export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new LidError('invalid_spec', `--env ${JSON.stringify(pair)}: use NAME=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

export function readFiles(pairs: string[]): NonNullable<RunSpecInput['files']> {
  return pairs.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new LidError('invalid_spec', `--file ${JSON.stringify(pair)}: use SANDBOX_PATH=LOCAL_FILE`);
    const local = pair.slice(eq + 1);
    let st: fs.Stats;
    try {
      st = fs.statSync(local);
    } catch {
      throw new LidError(
        'not_found',
        `--file ${JSON.stringify(pair)}: cannot read local file ${JSON.stringify(local)}`,
      );
    }
    if (!st.isFile())
      throw new LidError('invalid_spec', `--file ${JSON.stringify(pair)}: ${local} is not a regular file`);
    return { path: pair.slice(0, eq), content: fs.readFileSync(local), mode: st.mode & 0o777 };
  });
}

export function limitsFrom(flags: JobFlags): Record<string, number> {
  return Object.fromEntries(
    Object.entries({
      memoryBytes: flags.memory,
      cpus: flags.cpus,
      pids: flags.pids,
      timeoutMs: flags.timeout,
      outputBytes: flags.outputLimit,
      diskBytes: flags.disk,
    }).filter((entry): entry is [string, number] => entry[1] !== undefined),
  );
}

export function addJobOptions(cmd: Command): Command {
  return cmd
    .option('--memory <size>', 'memory limit, no swap (e.g. 64m)', asSize)
    .option('--cpus <n>', 'CPU limit as a fraction of cores (e.g. 0.5)', asNumber)
    .option('--pids <n>', 'most processes and threads at once', asNumber)
    .option('--timeout <duration>', 'wall-clock limit (e.g. 5s, 250ms, 2m)', asDuration)
    .option('--output-limit <size>', 'most bytes kept per output stream; more kills the job (e.g. 1m)', asSize)
    .option('--disk <size>', 'size of the writable layer (e.g. 64m)', asSize)
    .addOption(
      new Option('--env <K=V>', 'environment variable for the job (repeatable)').argParser(collect).default([]),
    )
    .addOption(
      new Option('--file <SANDBOX_PATH=LOCAL_FILE>', 'copy a local file into the sandbox before it starts (repeatable)')
        .argParser(collect)
        .default([]),
    )
    .option('--workdir <dir>', 'working directory inside the sandbox (created if missing)')
    .option(
      '--network <policy>',
      'none (default: loopback only), internet, or allow=LIST: comma-separated domains, *.domains, IPv4 ' +
        'addresses and CIDRs, each with an optional :PORT (e.g. allow=pypi.org,*.pythonhosted.org:443)',
      asOption(parseNetworkFlag),
    );
}
