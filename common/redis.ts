// Which Redis Lid uses and how it connects to it. REDIS_URL names a Redis shared by many nodes; without it, every
// `lid` command with the same LID_DATA_DIR uses the embedded server under that directory (common/embedded-redis.ts),
// starting it when needed. The gateway, the workers and the CLI all connect through connectRedis, so every
// connection has the settings BullMQ needs and a name that shows in CLIENT LIST.
import { Redis } from 'ioredis';
import type { LidConfig } from './config.js';
import { ensureEmbeddedRedis, type EnsureEmbeddedRedisOptions } from './embedded-redis.js';

/** The URL of the Redis to use: REDIS_URL, or the embedded server of LID_DATA_DIR (started if it is not running). */
export async function redisUrl(config: LidConfig, opts: EnsureEmbeddedRedisOptions = {}): Promise<string> {
  return config.redisUrl ?? (await ensureEmbeddedRedis(config.dataDir, opts)).url;
}

/**
 * Opens a connection named `lid:<purpose>` (e.g. lid:gateway, lid:worker). It reconnects forever and keeps commands
 * queued meanwhile (maxRetriesPerRequest: null, which BullMQ requires of the connections its workers block on), so a
 * Redis restart delays jobs rather than failing them. Callers listen for 'error' to log connection problems.
 */
export function connectRedis(url: string, purpose: string): Redis {
  return new Redis(url, {
    connectionName: `lid:${purpose}`,
    maxRetriesPerRequest: null,
    // Commands wait until the server has loaded its data (after a restart it replays its AOF first).
    enableReadyCheck: true,
    lazyConnect: false,
  });
}
