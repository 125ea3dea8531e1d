// Tracing for a long-running `lid` command (gateway, worker, up): registers the SDK (common/telemetry.ts) with its
// own Redis connection (to the command's Redis) for the per-job trace records, and stops both in order, spans
// flushed first.
import type { LidConfig } from '../common/config.js';
import { connectRedis } from '../common/redis.js';
import { initTelemetry, type Telemetry } from '../common/telemetry.js';

export function startTelemetry(config: LidConfig, serviceName: string, redisUrl: string): Telemetry {
  const redis = connectRedis(redisUrl, 'telemetry');
  redis.on('error', () => {}); // the recorder drops spans while Redis is away; the other connections log it
  const telemetry = initTelemetry(config, serviceName, redis);
  let stopping: Promise<void> | undefined;
  return {
    shutdown: () =>
      (stopping ??= (async () => {
        await telemetry.shutdown();
        await redis.quit().catch(() => {});
      })()),
  };
}
