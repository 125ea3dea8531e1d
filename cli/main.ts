// The `lid` command: one program, a subcommand per part. Parsing and help come from commander; each subcommand
// lives in its own file.
import { Command } from 'commander';
import { ConfigError, describeConfig, type LidConfig, loadConfig } from '../common/config.js';
import { ensureInitBinary } from '../runtime/init/init-binary.js';
import { imagesCommand } from './images.js';
import { runCommand } from './run.js';
import { tenantsCommand } from './tenants.js';
import { gatewayCommand, upCommand } from './up.js';
import { workerCommand } from './worker.js';
import { sandboxCommand } from './sandbox-run.js';

export function buildProgram(config: LidConfig): Command {
  const program = new Command('lid')
    .description('Lid: a sandbox job runner. Runs untrusted commands in fresh, limited Linux containers.')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nEnvironment:\n${describeConfig()
        .map((c) => `  ${c.env.padEnd(22)} ${c.doc}${c.default ? ` (default ${c.default})` : ''}`)
        .join('\n')}`,
    );
  program.addCommand(sandboxCommand(config));
  program.addCommand(upCommand(config));
  program.addCommand(gatewayCommand(config));
  program.addCommand(workerCommand(config));
  program.addCommand(runCommand(config));
  program.addCommand(imagesCommand(config));
  program.addCommand(tenantsCommand(config));
  // Used by `npm run build`: compiles the sandbox init ahead of the first sandbox.
  program.addCommand(
    new Command('build-init').description('compile the sandbox init (part of npm run build)').action(() => {
      process.stdout.write(`built ${ensureInitBinary()}\n`);
    }),
    { hidden: true },
  );
  return program;
}

export async function main(argv: string[]): Promise<void> {
  let config: LidConfig;
  try {
    config = loadConfig();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`lid: ${e.message}\n`);
    process.exitCode = 2;
    return;
  }
  await buildProgram(config).parseAsync(argv);
}
