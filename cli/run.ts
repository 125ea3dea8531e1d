// `lid run`: submit one job through the gateway and behave like `lid sandbox run` -- the job's output streams as
// it is produced (Server-Sent Events, read by LidClient) and lid exits with the job's code (128+signal when killed, 124 on timeout,
// 125 when Lid could not run it). The gateway and key come from LID_URL and LID_API_KEY, defaulting to the
// all-in-one's address and development key. Ctrl-C cancels the job.
import os from 'node:os';
import { Command } from 'commander';
import type { LidConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import { LidClient } from '../common/http-client.js';
import type { JobRecord, JobRequestInput } from '../common/job.js';
import { isLidApiError } from '../common/lid-api-error.js';
import { gatewayEndpoint } from './local/dev-tenant.js';
import { addJobOptions, type JobFlags, limitsFrom, parseEnv, readFiles } from './run-flags.js';

const EXIT_TIMEOUT = 124;
const EXIT_LID_FAILED = 125;

interface Flags extends JobFlags {
  image: string;
  json?: boolean;
}

/** The --file flags as the API takes them: base64, so any bytes travel unchanged. */
function filesFrom(pairs: string[]): NonNullable<JobRequestInput['files']> {
  return readFiles(pairs).map((f) => ({
    path: f.path,
    content: Buffer.from(f.content).toString('base64'),
    encoding: 'base64',
    ...(f.mode !== undefined ? { mode: f.mode } : {}),
  }));
}

export function exitCodeForRecord(record: JobRecord): number {
  if (record.state !== 'completed' || !record.result) return record.state === 'cancelled' ? 130 : EXIT_LID_FAILED;
  const { status, signal, exitCode } = record.result;
  if (status === 'timeout') return EXIT_TIMEOUT;
  if (signal) return 128 + (os.constants.signals[signal as NodeJS.Signals] ?? 0);
  return exitCode ?? EXIT_LID_FAILED;
}

/** The job the flags describe, as POST /v1/jobs takes it (a flag left out is left out: the gateway's default). */
export function jobRequestOf(flags: JobFlags & { image: string }, command: string[]): JobRequestInput {
  return {
    image: flags.image,
    command,
    env: parseEnv(flags.env),
    files: filesFrom(flags.file),
    ...(flags.workdir ? { cwd: flags.workdir } : {}),
    limits: limitsFrom(flags),
    ...(flags.network ? { network: flags.network } : {}),
  };
}

async function runJob(config: LidConfig, command: string[], flags: Flags): Promise<number> {
  const lid = new LidClient(gatewayEndpoint(config));
  const { id } = await lid.submit(jobRequestOf(flags, command));
  const cancel = () => void lid.cancel(id).catch(() => {});
  process.once('SIGINT', cancel);
  try {
    for await (const event of lid.events(id)) {
      if (event.type === 'output' && !flags.json) {
        (event.stream === 'stdout' ? process.stdout : process.stderr).write(Buffer.from(event.data, event.encoding));
      } else if (event.type === 'final') {
        const { record } = event;
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(record)}\n`);
          return record.state === 'completed' ? 0 : EXIT_LID_FAILED;
        }
        if (record.state === 'error')
          process.stderr.write(`lid: ${record.error?.message ?? 'Lid could not run the job'}\n`);
        if (record.state === 'cancelled') process.stderr.write('lid: the job was cancelled\n');
        if (record.result?.status === 'timeout') process.stderr.write('lid: timed out; the sandbox was killed\n');
        return exitCodeForRecord(record);
      }
    }
    throw new Error(`the event stream of ${id} ended before its final event`); // events() ends only after final
  } finally {
    process.off('SIGINT', cancel);
  }
}

export function runCommand(config: LidConfig): Command {
  const cmd = new Command('run')
    .description('submit a job through the gateway, stream its output, and exit with its code')
    .usage('--image NAME [options] -- CMD [ARG...]')
    .requiredOption('--image <name>', 'image to run (e.g. python, node, bash)')
    // A flag commander refuses means the job could not run: 125, as for every failure of lid itself.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_LID_FAILED));
  return addJobOptions(cmd)
    .option('--json', 'print the final job record as JSON instead of passing output through')
    .argument('[command...]', 'the command and its arguments, after -- (default: the image’s own)')
    .addHelpText(
      'after',
      '\nEnvironment: LID_URL (default http://127.0.0.1:LID_PORT), LID_API_KEY (default: the all-in-one development key).',
    )
    .action(async (command: string[], flags: Flags) => {
      try {
        process.exitCode = await runJob(config, command, flags);
      } catch (e) {
        if (!isLidError(e) && !isLidApiError(e)) throw e;
        // No answer at all: most often the all-in-one is not running here.
        const hint = isLidApiError(e) && e.status === null ? '; start it with npm start, or set LID_URL' : '';
        process.stderr.write(`lid: ${e.message}${hint}\n`);
        process.exitCode = EXIT_LID_FAILED;
      }
    });
}
