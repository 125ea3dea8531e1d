// Which images a job may name. The gateway cannot look into the image stores (they live on the worker nodes), so
// it checks what it can: that the name is an image reference (common/image-reference.ts, the parser the stores use),
// and, when workers have published what they offer in the Redis SET keys.images ("python:latest", ...), that a
// local name is one of them. A name with a registry host ("127.0.0.1:5000/team/app:1") is let through: workers pull
// such images on first use, so no list can hold them all.
import type { Redis } from 'ioredis';
import { isLidError } from '../common/errors.js';
import { formatReference, type ImageReference, parseReference } from '../common/image-reference.js';
import { keys } from '../common/keys.js';
import type { Problem } from '../common/validation.js';

function parsed(image: string): ImageReference | string {
  try {
    return parseReference(image);
  } catch (e) {
    if (isLidError(e)) return e.message;
    throw e;
  }
}

export class ImageCatalog {
  constructor(private readonly redis: Redis) {}

  /** The names workers published, sorted; empty when none did. */
  async list(): Promise<string[]> {
    return (await this.redis.smembers(keys.images)).sort();
  }

  /**
   * A checker for many names with one read of the set (a batch names up to 1000 images): returns a problem for a
   * bad name, or null. Without a published list every well-formed name passes, and the worker decides.
   */
  async checker(): Promise<(image: string, path: string) => Problem | null> {
    const known = await this.list();
    const knownSet = new Set(known);
    return (image, path) => {
      const ref = parsed(image);
      if (typeof ref === 'string')
        return { path, message: `${ref} (e.g. python, python:3.11 or host:5000/team/app:1)` };
      // The name as the stores key it ("python" is "python:latest", "docker.io/library/python:3" is "python:3").
      const name = formatReference(ref);
      if (knownSet.size === 0 || ref.registry !== undefined || knownSet.has(name)) return null;
      const shown = known.length > 20 ? `${known.slice(0, 20).join(', ')}, ...` : known.join(', ');
      return { path, message: `unknown image "${name}"; known images: ${shown}`, known };
    };
  }
}
