// Commands whose parts are not built yet. Each says so plainly and exits non-zero, so that neither a person nor a
// script mistakes a missing feature for a working one.
import { Command } from 'commander';

export function notBuilt(name: string, description: string, what: string): Command {
  return new Command(name)
    .description(`${description} (not built yet)`)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      process.stderr.write(
        `lid ${name}: ${what} is not built yet.\n` +
          'What works today: running one command in a sandbox on this machine, for example\n' +
          '  npx lid sandbox run --rootfs DIR --memory 64m --timeout 5s -- /bin/echo hello\n' +
          'See README.md for the state of each part.\n',
      );
      process.exitCode = 2;
    });
}
