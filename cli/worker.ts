// `lid worker`: one worker node. It consumes the queue in REDIS_URL (or the embedded Redis of LID_DATA_DIR), runs
// each job in a sandbox, and stops gracefully on SIGTERM/SIGINT (LID_SHUTDOWN_GRACE_MS). What the command runs,
// loaded when it runs: service-commands.ts declares it.
import type { LidConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { LidWorker } from '../worker/worker.js';
import { redisUrl } from './local/redis-url.js';
import { startTelemetry } from './telemetry.js';

export async function runWorker(config: LidConfig): Promise<void> {
  const logger = createLogger(config, 'worker');
  const url = await redisUrl(config, { onNotice: (msg) => logger.info(msg) });
  const telemetry = startTelemetry(config, 'lid-worker', url);
  const worker = await LidWorker.start(config, { redisUrl: url, logger });
  await new Promise<void>((resolve) => {
    const stop = () => void worker.close().then(telemetry.shutdown).then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
