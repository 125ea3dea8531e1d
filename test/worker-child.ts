// A worker in its own process, for the tests that kill or stop one: prints "ready" once consuming.
import { pino } from 'pino';
import { loadConfig } from '../common/config.js';
import { LidWorker } from '../worker/worker.js';

const [redisUrl, dataDir, grace] = process.argv.slice(2);
const config = loadConfig({
  LID_DATA_DIR: dataDir,
  LID_WORKER_CONCURRENCY: '4',
  LID_SHUTDOWN_GRACE_MS: grace ?? '500',
});
const worker = await LidWorker.start(config, {
  redisUrl: redisUrl!,
  logger: pino({ level: 'silent' }),
  lockDurationMs: 2000,
});
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
process.stdout.write('ready\n');
