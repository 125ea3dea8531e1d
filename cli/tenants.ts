// `lid tenants ...`: create, list, update and revoke tenants in the Redis of REDIS_URL (or the embedded one of
// LID_DATA_DIR). Output is JSON on stdout; `create` prints the API key, the only time anyone sees it.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { LidConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import { connectRedis, redisUrl } from '../common/redis.js';
import { formatSize, parseDuration, parseSize } from '../common/units.js';
import { TENANT_DEFAULTS, type TenantSettings, TenantStore } from '../gateway/tenants.js';

/** Wraps a parser so that its RangeError becomes commander's "option '--x <v>' argument 'y' is invalid. ..." */
const asOption =
  <T>(parse: (text: string) => T) =>
  (text: string): T => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };

function positive(integer: boolean) {
  return asOption((text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new RangeError(`"${text}" is not a positive ${integer ? 'whole ' : ''}number`);
    }
    return n;
  });
}

interface SettingsFlags {
  concurrency?: number;
  rate?: number;
  maxQueued?: number;
  maxTimeout?: number;
  maxMemory?: number;
}

const CREATE_DEFAULTS: Record<keyof SettingsFlags, string> = {
  concurrency: String(TENANT_DEFAULTS.concurrency),
  rate: String(TENANT_DEFAULTS.ratePerSec),
  maxQueued: String(TENANT_DEFAULTS.maxQueued),
  maxTimeout: `${TENANT_DEFAULTS.maxTimeoutMs / 1000}s`,
  maxMemory: formatSize(TENANT_DEFAULTS.maxMemoryBytes),
};

/** The settings flags, shared by create (left out: the default) and update (left out: unchanged). */
function withSettingsFlags(command: Command, defaults: typeof CREATE_DEFAULTS | null): Command {
  const flag = (flags: string, what: string, key: keyof SettingsFlags, parse: (text: string) => number) =>
    new Option(flags, `${what} (${defaults ? `default ${defaults[key]}` : 'unchanged when left out'})`).argParser(
      parse,
    );
  return command
    .addOption(flag('--concurrency <n>', 'jobs running at once across all workers', 'concurrency', positive(true)))
    .addOption(flag('--rate <per-s>', 'requests per second', 'rate', positive(false)))
    .addOption(flag('--max-queued <n>', 'jobs waiting at once', 'maxQueued', positive(true)))
    .addOption(
      flag('--max-timeout <duration>', 'largest timeout a job may ask for', 'maxTimeout', asOption(parseDuration)),
    )
    .addOption(flag('--max-memory <size>', 'largest memory a job may ask for', 'maxMemory', asOption(parseSize)));
}

const settingsOf = (flags: SettingsFlags): Partial<TenantSettings> => ({
  concurrency: flags.concurrency,
  ratePerSec: flags.rate,
  maxQueued: flags.maxQueued,
  maxTimeoutMs: flags.maxTimeout,
  maxMemoryBytes: flags.maxMemory,
});

const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

export function tenantsCommand(config: LidConfig): Command {
  /** Runs one subcommand on its own connection, closed at the end; LidErrors become "lid tenants x: message". */
  const withStore = async (what: string, body: (store: TenantStore) => Promise<void>): Promise<void> => {
    const redis = connectRedis(await redisUrl(config), 'cli');
    try {
      await body(new TenantStore(redis));
    } catch (e) {
      if (!isLidError(e)) throw e;
      process.stderr.write(`lid tenants ${what}: ${e.message}\n`);
      process.exitCode = 1;
    } finally {
      await redis.quit();
    }
  };

  const tenants = new Command('tenants').description('create and manage tenants and their API keys');

  withSettingsFlags(
    tenants
      .command('create')
      .description('create a tenant and print {"tenant", "apiKey"}: the key is shown only this once')
      .argument('<name>', 'lowercase letters, digits and -, at most 63'),
    CREATE_DEFAULTS,
  ).action((name: string, flags: SettingsFlags) =>
    withStore('create', async (store) => print(await store.create(name, settingsOf(flags)))),
  );

  tenants
    .command('list')
    .description('print every tenant as a JSON array (keys are never shown)')
    .action(() => withStore('list', async (store) => print(await store.list())));

  withSettingsFlags(
    tenants.command('update').description('change some of a tenant’s settings').argument('<name>'),
    null,
  ).action((name: string, flags: SettingsFlags) =>
    withStore('update', async (store) => print(await store.update(name, settingsOf(flags)))),
  );

  tenants
    .command('revoke')
    .description('revoke a tenant’s API key: it stops working at once')
    .argument('<name>')
    .action((name: string) => withStore('revoke', async (store) => print(await store.revoke(name))));

  return tenants;
}
