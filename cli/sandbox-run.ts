// `lid sandbox run`: one sandbox from the command line, the runtime's CLI contract (kept stable: scripts rely on it).
// Without --json the job's output passes through live and lid exits with the job's code (128+signal when killed,
// 124 on timeout); with --json it prints exactly one JSON RunResult and exits 0 whenever the sandbox ran. When the
// sandbox could not run at all, lid exits 125 (with --json: {"error": {...}} on stdout).
import os from 'node:os';
import { Command } from 'commander';
import type { LidConfig } from '../common/config.js';
import { isLidError, LidError } from '../common/errors.js';
import { sandboxNetworkOptions } from '../common/net-settings.js';
import { runResultView } from '../common/run-result-json.js';
import type { RunResult, RunSpecInput } from '../common/run-spec.js';
import { jobDefaults } from '../images/image-defaults.js';
import { operatorPulls } from '../images/pull-policy.js';
import type { SandboxRuntime } from '../runtime/index.js';
import { terminalProgress } from './progress.js';
import { addJobOptions, type JobFlags, limitsFrom, parseEnv, readFiles } from './run-flags.js';

export const EXIT_TIMEOUT = 124;
export const EXIT_LID_FAILED = 125;

interface RunFlags extends JobFlags {
  rootfs?: string;
  image?: string;
  plainHttp?: boolean;
  json?: boolean;
}

export function buildSpec(flags: RunFlags, argv: string[], config: LidConfig): RunSpecInput {
  if (flags.image && flags.rootfs)
    throw new LidError('invalid_spec', 'give either --rootfs DIR or --image NAME, not both');
  if (!flags.rootfs && !flags.image) {
    throw new LidError('invalid_spec', 'say which root filesystem to use: --rootfs DIR or --image NAME');
  }
  if (argv.length === 0 && !flags.image) {
    throw new LidError(
      'invalid_spec',
      'give the command to run after --, e.g. lid sandbox run --rootfs DIR -- /bin/echo hi',
    );
  }
  return {
    rootfs: flags.rootfs ?? '/',
    argv,
    rlimits: { nofile: config.rlimitNofile, stack: config.rlimitStack },
    env: parseEnv(flags.env),
    files: readFiles(flags.file),
    ...(flags.workdir ? { cwd: flags.workdir } : {}),
    limits: limitsFrom(flags),
    ...(flags.network ? { network: flags.network } : {}),
  };
}

/** The exit code lid returns for a job when passing its output through. */
export function exitCodeFor(result: RunResult): number {
  if (result.status === 'timeout') return EXIT_TIMEOUT;
  if (result.signal) return 128 + (os.constants.signals[result.signal as NodeJS.Signals] ?? 0);
  return result.exitCode ?? EXIT_LID_FAILED;
}

const NOTES: Partial<Record<RunResult['status'], (r: RunResult) => string>> = {
  timeout: (r) => `timed out after ${r.usage.wallMs} ms; the sandbox was killed`,
  oom: (r) => `out of memory (peak ${r.usage.memoryPeakBytes} bytes); the kernel killed the job`,
  output_limit: () => 'output limit reached; the sandbox was killed and its output truncated',
};

/**
 * Resolves --image the way a worker resolves a job's image (images/acquire.ts), with the operator's own pull rights,
 * as `lid images pull` has them: the store's layers become the root, and the image's config the defaults for the
 * command, environment, working directory and user. A missing image is built from its recipe or pulled first.
 */
async function withImage(
  config: LidConfig,
  spec: RunSpecInput,
  flags: RunFlags & { image: string },
): Promise<{ spec: RunSpecInput; release: () => void }> {
  // Loaded here rather than at the top: `lid --help` builds this command too (main.ts says why).
  const [{ ImageAcquirer }, { ImageStore }] = await Promise.all([
    import('../images/acquire.js'),
    import('../images/store.js'),
  ]);
  const progress = terminalProgress();
  const images = new ImageAcquirer(ImageStore.open(config.dataDir), {
    pulls: operatorPulls(config, { plainHttp: flags.plainHttp }),
    onProgress: progress.report,
    onFetch: (name, how) =>
      process.stderr.write(
        how === 'build'
          ? `lid: building image ${name} from its recipe (first use)\n`
          : `lid: pulling image ${name} (first use)\n`,
      ),
  });
  try {
    const { image, release } = await images.acquire(flags.image);
    const d = jobDefaults(image.config, { argv: spec.argv, env: spec.env, cwd: spec.cwd });
    return {
      spec: { ...spec, rootfs: image.layerDirs, argv: d.argv, env: d.env, cwd: d.cwd, user: d.user },
      release,
    };
  } finally {
    progress.done();
  }
}

async function runCommand(config: LidConfig, argv: string[], flags: RunFlags): Promise<number> {
  let runtime: SandboxRuntime | null = null;
  let release = () => {};
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let spec = buildSpec(flags, argv, config);
    if (flags.image) ({ spec, release } = await withImage(config, spec, { ...flags, image: flags.image }));
    const { SandboxRuntime } = await import('../runtime/index.js'); // loaded when a sandbox runs, not for --help
    runtime = await SandboxRuntime.start({
      cgroupParent: config.cgroupParent,
      mountDir: config.mountDir,
      sandboxUids: config.sandboxUids,
      threads: 1,
      network: sandboxNetworkOptions(config),
    });
    const result = await runtime.run(spec, {
      signal: controller.signal,
      onOutput: flags.json
        ? undefined
        : (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
    });
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(runResultView(result))}\n`);
      return 0;
    }
    const note = NOTES[result.status]?.(result);
    if (note) process.stderr.write(`lid: ${note}\n`);
    return exitCodeFor(result);
  } catch (e) {
    if (controller.signal.aborted) {
      process.stderr.write('lid: interrupted; the sandbox was killed\n');
      return 130;
    }
    const error = isLidError(e) ? e.toJSON() : { code: 'internal', message: (e as Error).message };
    if (flags.json) process.stdout.write(`${JSON.stringify({ error })}\n`);
    process.stderr.write(`lid: ${error.message}\n`);
    return EXIT_LID_FAILED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await runtime?.close();
    release();
  }
}

export function sandboxCommand(config: LidConfig): Command {
  const sandbox = new Command('sandbox').description(
    'run commands in sandboxes directly on this machine (no queue, no gateway)',
  );
  const run = sandbox
    .command('run')
    .description('run one command in a fresh sandbox and pass its output through')
    .usage('(--rootfs DIR | --image NAME) [options] -- CMD [ARG...]')
    .option('--rootfs <dir>', 'root filesystem directory (used read-only; writes go to a private layer)')
    .option('--image <name>', 'image from the store (see lid images); a recipe image is built on first use')
    .option('--plain-http', "talk plain HTTP to the image's registry, if it is pulled (for a registry on loopback)");
  // A flag commander refuses means the sandbox could not run: 125, like any other failure of lid itself.
  run.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_LID_FAILED);
  });
  addJobOptions(run)
    .option('--json', 'print one JSON RunResult instead of passing output through')
    .argument('[command...]', 'the command and its arguments, after --')
    .addHelpText(
      'after',
      "\nExit status: the job's own; 128+N when killed by signal N; 124 on timeout; 125 when the sandbox could not run.\nWith --json: 0 whenever the sandbox ran.\n\nExample:\n  lid sandbox run --rootfs ./rootfs --memory 64m --timeout 5s -- /bin/sh -c 'echo hello from $(hostname)'",
    )
    .action(async (command: string[], flags: RunFlags) => {
      process.exitCode = await runCommand(config, command, flags);
    });
  return sandbox;
}
