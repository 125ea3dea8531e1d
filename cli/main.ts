// The `lid` command: one program, a subcommand per part. Parsing and help come from commander; each subcommand
// lives in its own file. The tree of commands, options and help is built from light modules only, and an action
// imports what it runs (servers, the runtime, the image store, Redis) when it runs. Loading every command's code up
// front made `lid --help` take 716 ms and `lid sandbox run --help` 826 ms (hyperfine, 30 runs each, 2 busy cores);
// now 182 ms both, of which Node itself is 67-81 ms and zod (config) and commander most of the rest.
// cli/main.test.ts checks that help loads none of the actions' code.
import { Command } from 'commander';
import { ConfigError, describeConfig, type LidConfig, loadConfig } from '../common/config.js';
import { imagesCommand } from './images.js';
import { runCommand } from './run.js';
import { sandboxCommand } from './sandbox-run.js';
import { gatewayCommand, upCommand, workerCommand } from './service-commands.js';
import { tenantsCommand } from './tenants.js';

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
    new Command('build-init').description('compile the sandbox init (part of npm run build)').action(async () => {
      const { ensureInitBinary } = await import('../runtime/init/init-binary.js');
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
