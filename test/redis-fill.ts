// Fills a Redis that has a maxmemory (noeviction) until it refuses even a small write with OOM, then keeps it full:
// whatever memory frees up (an expiring lock, a trimmed stream) is taken at once, as sustained pressure from other
// writers would. Large values alone are not enough: a refused command's own argument counts towards used memory while
// it waits, so the values shrink down to 64 bytes before Redis counts as full.
import type { Redis } from 'ioredis';
import { isRedisFull } from '../common/redis.js';

export interface FullRedis {
  /** Resolves once Redis refuses a 64-byte write. */
  full: Promise<void>;
  /** How many filler keys (`filler:<n>`) have been written so far. */
  written(): number;
  /** Stops the pressure and deletes the fillers. */
  stop(): Promise<void>;
}

export function keepRedisFull(redis: Redis): FullRedis {
  let stopped = false;
  let n = 0;
  let reached!: () => void;
  const full = new Promise<void>((resolve) => (reached = resolve));
  const loop = (async () => {
    for (const size of [256 * 1024, 16 * 1024, 1024, 64]) {
      for (let i = 0; ; i++) {
        if (i > 2000) throw new Error('Redis never filled up: is maxmemory set?');
        try {
          await redis.set(`filler:${n}`, 'x'.repeat(size));
          n++;
        } catch (e) {
          if (!isRedisFull(e)) throw e;
          break;
        }
      }
    }
    reached();
    while (!stopped) {
      await redis.set(`filler:${n}`, 'x'.repeat(64)).then(
        () => n++,
        () => new Promise((resolve) => setTimeout(resolve, 2)),
      );
    }
  })();
  return {
    full: Promise.race([full, loop.then(() => {})]),
    written: () => n,
    async stop() {
      stopped = true;
      await loop;
      for (let i = 0; i < n; i += 1000) {
        await redis.del(...Array.from({ length: Math.min(1000, n - i) }, (_, k) => `filler:${i + k}`));
      }
    },
  };
}
