// How Lid connects to Redis. The gateway, the workers and the CLI all connect through connectRedis, so every
// connection has the settings BullMQ needs and a name that shows in CLIENT LIST. Which Redis (REDIS_URL or the
// embedded server of `lid up`) is the CLI's decision (cli/local/redis-url.ts): the gateway and workers are given a URL.
//
// A Redis URL may carry credentials (redis://user:password@host:port/db, rediss:// for TLS; the embedded server's
// always does): ioredis reads them from the URL and keeps them in the connection's options, which duplicate() and
// BullMQ's own duplicates copy. Show a URL only through maskRedisUrl.
import { Redis } from 'ioredis';
import { connectionName } from './keys.js';

/** The URL with its password replaced by ***, for banners and logs. */
export function maskRedisUrl(url: string): string {
  if (!URL.canParse(url)) return '<unparsable Redis URL>';
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/**
 * Opens a connection named `lid:<purpose>` (e.g. lid:gateway, lid:worker). It reconnects forever and keeps commands
 * queued meanwhile (maxRetriesPerRequest: null, which BullMQ requires of the connections its workers block on), so a
 * Redis restart delays jobs rather than failing them. Callers listen for 'error' to log connection problems.
 */
export function connectRedis(url: string, purpose: string): Redis {
  return new Redis(url, {
    connectionName: connectionName(purpose),
    maxRetriesPerRequest: null,
    // Commands wait until the server has loaded its data (after a restart it replays its AOF first).
    enableReadyCheck: true,
    lazyConnect: false,
  });
}

/**
 * True for Redis's answer to a write when it has reached maxmemory under noeviction ("OOM command not allowed when
 * used memory > 'maxmemory'."), also when it comes wrapped in another error's message.
 */
export function isRedisFull(e: unknown): boolean {
  return e instanceof Error && /\bOOM command not allowed\b/.test(e.message);
}

/**
 * Runs `fn`, and again with a growing pause (up to 5 s) while Redis answers that it is full, for up to `forMs`
 * (default 10 min). For writes that must not be lost, such as a finished job's result: memory frees as older
 * results expire or the operator raises the limit, and running the job again would be worse than waiting.
 */
export async function retryWhileRedisFull<T>(fn: () => Promise<T>, forMs = 10 * 60_000): Promise<T> {
  const deadline = Date.now() + forMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 5000)) {
    try {
      return await fn();
    } catch (e) {
      if (!isRedisFull(e) || Date.now() + pause > deadline) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
