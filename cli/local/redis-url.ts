// Which Redis a `lid` command uses: REDIS_URL, which names a Redis shared by many nodes, or else the embedded server
// of LID_DATA_DIR (cli/local/embedded-redis.ts), started when it is not running, so that every `lid` command with the
// same LID_DATA_DIR reaches the same one. Decided here, in the CLI: the gateway and the worker take the URL from
// their caller and never start, install or look for a Redis themselves.
import type { LidConfig } from '../../common/config.js';
import { ensureEmbeddedRedis, type EnsureEmbeddedRedisOptions } from './embedded-redis.js';

/** The URL of the Redis to use: REDIS_URL, or the embedded server of LID_DATA_DIR (started if it is not running). */
export async function redisUrl(config: LidConfig, opts: EnsureEmbeddedRedisOptions = {}): Promise<string> {
  return (
    config.redisUrl ?? (await ensureEmbeddedRedis(config.dataDir, { maxmemory: config.redisMaxmemory, ...opts })).url
  );
}
