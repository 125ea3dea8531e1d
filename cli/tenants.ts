// `lid tenants ...`: create, list, update and revoke tenants and rotate their callback signing secrets, in the Redis of
// REDIS_URL (or the embedded one of LID_DATA_DIR). Output is JSON on stdout; `create` prints the API key and the
// signing secret, the only time anyone sees them (`rotate-signing-secret` prints a new secret, once).
//
// A ceiling asked for above this server's cap (LID_CAP_*) is refused, naming the flag: the tenant could never use
// it. Caps are configuration and may change later, so this is a courtesy check against the caps `lid` sees here;
// what holds is the gateway's and the workers' min(tenant ceiling, their own cap) at each job.
import { Command, Option } from 'commander';
import { loadSigningKey } from '../common/callback-secret.js';
import type { LidConfig } from '../common/config.js';
import { isLidError, LidError } from '../common/errors.js';
import { CAP_VARIABLES, type LimitField, type LimitValues, serverCaps } from '../common/limits.js';
import { NETWORK_LEVELS, type NetworkLevel } from '../common/network-policy.js';
import type { connectRedis } from '../common/redis.js';
import { TENANT_DEFAULTS, type TenantSettings } from '../common/tenant-record.js';
import { formatSize, parseDuration, parseSize } from '../common/units.js';
import { TenantStore } from '../gateway/tenants.js';
import { asOption } from './option-parsers.js';

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
  maxCpus?: number;
  maxPids?: number;
  maxOutput?: number;
  maxDisk?: number;
  network?: NetworkLevel;
}

const CREATE_DEFAULTS: Record<keyof SettingsFlags, string> = {
  concurrency: String(TENANT_DEFAULTS.concurrency),
  rate: String(TENANT_DEFAULTS.ratePerSec),
  maxQueued: String(TENANT_DEFAULTS.maxQueued),
  maxTimeout: `${TENANT_DEFAULTS.maxTimeoutMs / 1000}s`,
  maxMemory: formatSize(TENANT_DEFAULTS.maxMemoryBytes),
  maxCpus: String(TENANT_DEFAULTS.maxCpus),
  maxPids: String(TENANT_DEFAULTS.maxPids),
  maxOutput: formatSize(TENANT_DEFAULTS.maxOutputBytes),
  maxDisk: formatSize(TENANT_DEFAULTS.maxDiskBytes),
  network: TENANT_DEFAULTS.network,
};

/** --network: the most network the tenant's jobs may ask for. */
const asNetworkLevel = asOption((text: string): NetworkLevel => {
  if (!(NETWORK_LEVELS as readonly string[]).includes(text))
    throw new RangeError(`the network ceiling must be ${NETWORK_LEVELS.join(', ')} (each allows the ones before it)`);
  return text as NetworkLevel;
});

/** Each ceiling flag: the job limit it bounds, and how to show a value the way the flag takes it. */
const CEILING_FLAGS = {
  maxTimeout: { flag: '--max-timeout', limit: 'timeoutMs', show: (ms: number) => `${ms / 1000}s` },
  maxMemory: { flag: '--max-memory', limit: 'memoryBytes', show: formatSize },
  maxCpus: { flag: '--max-cpus', limit: 'cpus', show: String },
  maxPids: { flag: '--max-pids', limit: 'pids', show: String },
  maxOutput: { flag: '--max-output', limit: 'outputBytes', show: formatSize },
  maxDisk: { flag: '--max-disk', limit: 'diskBytes', show: formatSize },
} as const satisfies Partial<Record<keyof SettingsFlags, { flag: string; limit: LimitField; show: unknown }>>;

/** Refuses ceilings above this server's caps, naming the flag, the cap and the variable that sets it. */
function checkAgainstCaps(flags: SettingsFlags, caps: LimitValues): void {
  const over = Object.entries(CEILING_FLAGS).flatMap(([key, { flag, limit, show }]) => {
    const value = flags[key as keyof typeof CEILING_FLAGS];
    return value !== undefined && value > caps[limit]
      ? [`${flag} ${show(value)} is above this server's cap of ${show(caps[limit])} (${CAP_VARIABLES[limit]})`]
      : [];
  });
  if (over.length)
    throw new LidError('invalid_spec', `${over.join('; ')}: ask for less, or raise the cap and restart Lid first`);
}

/** The settings flags, shared by create (left out: the default) and update (left out: unchanged). */
function withSettingsFlags(command: Command, defaults: typeof CREATE_DEFAULTS | null): Command {
  const flag = <T>(flags: string, what: string, key: keyof SettingsFlags, parse: (text: string) => T) =>
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
    .addOption(flag('--max-memory <size>', 'largest memory a job may ask for', 'maxMemory', asOption(parseSize)))
    .addOption(flag('--max-cpus <n>', 'most CPUs a job may ask for', 'maxCpus', positive(false)))
    .addOption(flag('--max-pids <n>', 'most processes a job may ask for', 'maxPids', positive(true)))
    .addOption(
      flag('--max-output <size>', 'most output per stream a job may ask for', 'maxOutput', asOption(parseSize)),
    )
    .addOption(flag('--max-disk <size>', 'largest writable disk a job may ask for', 'maxDisk', asOption(parseSize)))
    .addOption(
      flag(
        '--network <level>',
        'most network a job may ask for: none, allowlist ({"allow": [...]}) or internet',
        'network',
        asNetworkLevel,
      ),
    );
}

const settingsOf = (flags: SettingsFlags): Partial<TenantSettings> => ({
  concurrency: flags.concurrency,
  ratePerSec: flags.rate,
  maxQueued: flags.maxQueued,
  maxTimeoutMs: flags.maxTimeout,
  maxMemoryBytes: flags.maxMemory,
  maxCpus: flags.maxCpus,
  maxPids: flags.maxPids,
  maxOutputBytes: flags.maxOutput,
  maxDiskBytes: flags.maxDisk,
  network: flags.network,
});

const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

export function tenantsCommand(config: LidConfig): Command {
  /** Runs one subcommand on its own connection, closed at the end; LidErrors become "lid tenants x: message". */
  const withStore = async (
    what: string,
    body: (store: TenantStore) => Promise<void>,
    opts: { signing?: boolean } = {},
  ): Promise<void> => {
    let redis: ReturnType<typeof connectRedis> | null = null;
    try {
      // The server key first: a missing or unsafe key file is reported before anything changes in Redis.
      const signingKey = opts.signing ? loadSigningKey(config) : undefined;
      // ioredis and the embedded Redis: loaded only when a subcommand runs, not for --help (main.ts)
      const { connectRedis } = await import('../common/redis.js');
      const { redisUrl } = await import('./local/redis-url.js');
      redis = connectRedis(await redisUrl(config), 'cli');
      await body(new TenantStore(redis, { signingKey }));
    } catch (e) {
      if (!isLidError(e)) throw e;
      process.stderr.write(`lid tenants ${what}: ${e.message}\n`);
      process.exitCode = 1;
    } finally {
      await redis?.quit();
    }
  };

  const tenants = new Command('tenants').description('create and manage tenants and their API keys');

  withSettingsFlags(
    tenants
      .command('create')
      .description(
        'create a tenant and print {"tenant", "apiKey", "signingSecret"}: the key and the secret are shown only this once',
      )
      .argument('<name>', 'lowercase letters, digits and -, at most 63'),
    CREATE_DEFAULTS,
  ).action((name: string, flags: SettingsFlags) =>
    withStore(
      'create',
      async (store) => {
        checkAgainstCaps(flags, serverCaps(config));
        print(await store.create(name, settingsOf(flags)));
      },
      { signing: true },
    ),
  );

  tenants
    .command('list')
    .description('print every tenant as a JSON array (keys are never shown)')
    .action(() => withStore('list', async (store) => print(await store.list())));

  withSettingsFlags(
    tenants.command('update').description('change some of a tenant’s settings').argument('<name>'),
    null,
  ).action((name: string, flags: SettingsFlags) =>
    withStore('update', async (store) => {
      checkAgainstCaps(flags, serverCaps(config));
      print(await store.update(name, settingsOf(flags)));
    }),
  );

  tenants
    .command('revoke')
    .description('revoke a tenant’s API key: it stops working at once')
    .argument('<name>')
    .action((name: string) => withStore('revoke', async (store) => print(await store.revoke(name))));

  tenants
    .command('rotate-signing-secret')
    .description(
      'replace a tenant’s callback signing secret and print {"tenant", "signingSecret"}: the old one stops ' +
        'verifying at once, and the new one is shown only this once',
    )
    .argument('<name>')
    .action((name: string) =>
      withStore('rotate-signing-secret', async (store) => print(await store.rotateSigningSecret(name)), {
        signing: true,
      }),
    );

  return tenants;
}
