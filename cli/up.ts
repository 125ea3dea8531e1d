// `lid up` (what `npm start` runs): the whole service on one machine. It starts Redis (REDIS_URL, or the embedded
// server under LID_DATA_DIR, installed with apt when missing), builds the default images that are missing, creates
// a development tenant when there is none (its key kept under LID_DATA_DIR for `lid run`), then runs a worker and
// the gateway in this process and prints the API key and a curl example. Ctrl-C stops it all gracefully. Also
// `lid gateway`, the gateway alone. What the commands run, loaded when they run: service-commands.ts declares them.
import type { LidConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { createMetrics } from '../common/metrics.js';
import { connectRedis, maskRedisUrl } from '../common/redis.js';
import { startGateway } from '../gateway/server.js';
import { TenantStore } from '../gateway/tenants.js';
import { buildImage } from '../images/build-image.js';
import { mirrorProblem } from '../images/debian/mirror-check.js';
import { stopAptRuns } from '../images/debian/resolve.js';
import { listImages } from '../images/catalog.js';
import { ImageStore } from '../images/store.js';
import { LidWorker } from '../worker/worker.js';
import { adminToken } from './admin-token.js';
import { DEV_TENANT, devTenantSettings, readDevKey, saveDevKey } from './local/dev-tenant.js';
import { ensureEmbeddedRedis, stopEmbeddedRedis } from './local/embedded-redis.js';
import { redisUrl } from './local/redis-url.js';
import { terminalProgress } from './progress.js';
import { startTelemetry } from './telemetry.js';

export const DEFAULT_IMAGES = ['busybox', 'python', 'node', 'bash'];

const MIRRORS_UNREACHABLE =
  /Failed to fetch|Temporary failure resolving|Could not resolve|Unable to connect|unreachable/i;

const say = (line: string) => process.stderr.write(`lid up: ${line}\n`);

/**
 * Builds the default images that are missing. One that cannot be built (no way to the package mirrors, say, when
 * Lid starts inside a network namespace without one) does not stop Lid: it starts without it and says which, and
 * jobs naming it fail with not_found until it is built.
 */
async function buildMissingImages(config: LidConfig): Promise<void> {
  const store = ImageStore.open(config.dataDir);
  const have = new Set(listImages(store).map((i) => i.name));
  const failed: string[] = [];
  const missing = DEFAULT_IMAGES.filter((n) => !have.has(`${n}:latest`));
  const unreachable = missing.length ? await mirrorProblem() : null;
  if (unreachable) {
    say(`the package mirrors cannot be reached from here: ${unreachable}`);
    failed.push(...missing);
  }
  for (const [i, name] of (unreachable ? [] : missing).entries()) {
    say(`building the ${name} image from its recipe (first start only)`);
    const progress = terminalProgress();
    try {
      await buildImage(store, name, progress.report);
    } catch (e) {
      const message = (e as Error).message;
      // apt's own error lines say why ("E: Failed to fetch ... Temporary failure resolving ..."); its warnings do not.
      const lines = message.split('\n');
      const why = lines.find((l) => l.startsWith('E: '))?.slice(3) ?? lines[0];
      say(`could not build the ${name} image: ${why}`);
      failed.push(name);
      if (MIRRORS_UNREACHABLE.test(message)) {
        // Every recipe fetches from the same mirrors: the others would each wait out the same timeouts.
        failed.push(...missing.slice(i + 1));
        say('the package mirrors cannot be reached from here: not trying the other images');
        break;
      }
    } finally {
      progress.done();
    }
  }
  if (failed.length)
    say(
      `starting without the ${failed.join(', ')} image${failed.length > 1 ? 's' : ''}: ` +
        `build ${failed.length > 1 ? 'them' : 'it'} later with \`lid images build NAME\``,
    );
}

/** The development tenant's key: the one kept under LID_DATA_DIR, or a new tenant when none exists at all. */
async function devKey(config: LidConfig, url: string): Promise<string | null> {
  const redis = connectRedis(url, 'up');
  try {
    const tenants = new TenantStore(redis);
    const saved = readDevKey(config);
    if (saved && (await tenants.authenticate(saved.apiKey))) return saved.apiKey;
    if ((await tenants.list()).length > 0) return null;
    const { apiKey } = await tenants.create(DEV_TENANT, devTenantSettings(config));
    saveDevKey(config, DEV_TENANT, apiKey);
    return apiKey;
  } finally {
    await redis.quit();
  }
}

async function up(config: LidConfig): Promise<void> {
  if (process.getuid?.() !== 0) {
    say('the worker runs sandboxes, which needs root (namespaces, mounts, cgroups): run it as root');
    process.exitCode = 1;
    return;
  }
  const logger = createLogger(config, 'lid');
  let startedRedis = false;
  // Ctrl-C or SIGTERM while starting (the first image builds take minutes): end the builds' apt processes and the
  // Redis this run started, rather than leave them running without anyone to stop them.
  const interruptedWhileStarting = () => {
    say('interrupted while starting: stopping what was started');
    stopAptRuns();
    void (startedRedis ? stopEmbeddedRedis(config.dataDir) : Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', interruptedWhileStarting);
  process.once('SIGTERM', interruptedWhileStarting);
  let url: string;
  if (!config.redisUrl) {
    const embedded = await ensureEmbeddedRedis(config.dataDir, { onNotice: say, maxmemory: config.redisMaxmemory });
    ({ url, started: startedRedis } = embedded);
    say(
      `${startedRedis ? 'started' : 'using'} the embedded Redis at ${maskRedisUrl(url)} (data in ` +
        `${config.dataDir}/redis, password in ${config.dataDir}/secrets/redis-password)`,
    );
  } else {
    url = config.redisUrl;
    say(`using the Redis at ${maskRedisUrl(url)}`);
  }
  await buildMissingImages(config);
  const apiKey = await devKey(config, url);
  const telemetry = startTelemetry(config, 'lid', url);
  // One registry for both: the gateway's /metrics then shows the worker's numbers too.
  const metrics = createMetrics();
  const admin = adminToken(config);
  const worker = await LidWorker.start(config, { redisUrl: url, logger, metrics });
  const gateway = await startGateway({ ...config, adminToken: admin }, { redisUrl: url, logger, metrics });
  process.off('SIGINT', interruptedWhileStarting);
  process.off('SIGTERM', interruptedWhileStarting);
  const shown = apiKey ?? '<your tenant key: npx lid tenants create NAME>';
  process.stdout.write(
    `Lid is up: gateway ${gateway.url}, a worker running ${worker.concurrency} jobs at once.\n` +
      `API key${apiKey ? ` (tenant "${DEV_TENANT}")` : ''}: ${shown}\n\n` +
      `  curl -s -H 'Authorization: Bearer ${shown}' -H 'Content-Type: application/json' \\\n` +
      `    -d '{"image":"python","command":["python3","-c","print(6*7)"]}' '${gateway.url}/v1/jobs?wait=30'\n\n` +
      `  npx lid run --image python -- python3 -c 'print(6*7)'\n` +
      `  API reference: ${gateway.url}/docs\n` +
      `  dashboard: ${gateway.url}/dashboard?token=${admin}\n` +
      `  metrics: ${gateway.url}/metrics\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  say('stopping: the gateway, then the worker (running jobs get their grace period)');
  await gateway.close();
  await worker.close();
  await telemetry.shutdown();
  if (startedRedis) await stopEmbeddedRedis(config.dataDir);
}

/** `lid up` (cli/service-commands.ts declares it): a LidError ends it with "lid up: message" and exit 1. */
export async function runUp(config: LidConfig): Promise<void> {
  try {
    await up(config);
  } catch (e) {
    if (!isLidError(e)) throw e;
    say(e.message);
    process.exitCode = 1;
  }
}

/** `lid gateway` (cli/service-commands.ts declares it): the gateway alone, until SIGINT or SIGTERM. */
export async function runGateway(config: LidConfig): Promise<void> {
  const logger = createLogger(config, 'gateway');
  const url = await redisUrl(config, { onNotice: (m) => logger.info(m) });
  const telemetry = startTelemetry(config, 'lid-gateway', url);
  const gateway = await startGateway(config, { redisUrl: url, logger });
  process.stderr.write(`lid gateway: listening on ${gateway.url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await gateway.close();
  await telemetry.shutdown();
}
