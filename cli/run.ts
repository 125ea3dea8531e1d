// `lid run`: submit one job through the gateway and behave like `lid sandbox run` -- the job's output streams as
// it is produced (Server-Sent Events) and lid exits with the job's code (128+signal when killed, 124 on timeout,
// 125 when Lid could not run it). The gateway and key come from LID_URL and LID_API_KEY, defaulting to the
// all-in-one's address and development key. Ctrl-C cancels the job.
import os from 'node:os';
import { Command } from 'commander';
import type { LidConfig } from '../common/config.js';
import { isLidError, LidError } from '../common/errors.js';
import type { JobRecord } from '../common/job.js';
import { gatewayEndpoint } from './local/dev-tenant.js';
import { addJobOptions, type JobFlags, limitsFrom, parseEnv, readFiles } from './run-flags.js';

const EXIT_TIMEOUT = 124;
const EXIT_LID_FAILED = 125;

interface Flags extends JobFlags {
  image: string;
  json?: boolean;
}

/** The --file flags as the API takes them: base64, so any bytes travel unchanged. */
function filesFrom(pairs: string[]): { path: string; content: string; encoding: 'base64'; mode?: number }[] {
  return readFiles(pairs).map((f) => ({
    path: f.path,
    content: Buffer.from(f.content).toString('base64'),
    encoding: 'base64',
    ...(f.mode !== undefined ? { mode: f.mode } : {}),
  }));
}

/** Reads a text/event-stream body into (event, data) pairs. */
async function* sse(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

export function exitCodeForRecord(record: JobRecord): number {
  if (record.state !== 'completed' || !record.result) return record.state === 'cancelled' ? 130 : EXIT_LID_FAILED;
  const { status, signal, exitCode } = record.result;
  if (status === 'timeout') return EXIT_TIMEOUT;
  if (signal) return 128 + (os.constants.signals[signal as NodeJS.Signals] ?? 0);
  return exitCode ?? EXIT_LID_FAILED;
}

async function api(url: string, apiKey: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, {
      ...init,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', ...init.headers },
    });
  } catch (e) {
    throw new LidError(
      'setup_failed',
      `cannot reach the gateway at ${url} (${(e as Error).cause ?? (e as Error).message}); start it with npm start, or set LID_URL`,
    );
  }
}

async function failure(res: Response): Promise<LidError> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  return new LidError('invalid_spec', body?.error?.message ?? `the gateway answered ${res.status}`, {
    status: res.status,
    code: body?.error?.code,
  });
}

async function runJob(config: LidConfig, command: string[], flags: Flags): Promise<number> {
  const { url, apiKey } = gatewayEndpoint(config);
  const body = {
    image: flags.image,
    command,
    env: parseEnv(flags.env),
    files: filesFrom(flags.file),
    ...(flags.workdir ? { cwd: flags.workdir } : {}),
    limits: limitsFrom(flags),
  };
  const submitted = await api(`${url}/v1/jobs`, apiKey, { method: 'POST', body: JSON.stringify(body) });
  if (!submitted.ok) throw await failure(submitted);
  const { id } = (await submitted.json()) as JobRecord;
  const cancel = () => void api(`${url}/v1/jobs/${id}`, apiKey, { method: 'DELETE' }).catch(() => {});
  process.once('SIGINT', cancel);
  try {
    const events = await api(`${url}/v1/jobs/${id}/events`, apiKey, { headers: { accept: 'text/event-stream' } });
    if (!events.ok || !events.body) throw await failure(events);
    for await (const { event, data } of sse(events.body)) {
      if (event === 'output' && !flags.json) {
        const out = JSON.parse(data) as { stream: 'stdout' | 'stderr'; data: string; encoding: 'utf8' | 'base64' };
        (out.stream === 'stdout' ? process.stdout : process.stderr).write(Buffer.from(out.data, out.encoding));
      } else if (event === 'final') {
        const record = JSON.parse(data) as JobRecord;
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
    throw new LidError('setup_failed', `the gateway closed the event stream of ${id} before the job ended`);
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
        if (!isLidError(e)) throw e;
        process.stderr.write(`lid: ${e.message}\n`);
        process.exitCode = EXIT_LID_FAILED;
      }
    });
}
