// Which images a job may name. The gateway cannot look into the image stores (they live on the worker nodes), so
// it checks what it can: that the name is a sane image reference, and, when workers have published what they offer
// in the Redis SET keys.images ("python:latest", ...), that a local name is one of them. A name with a registry host
// ("127.0.0.1:5000/team/app:1") is let through: workers pull such images on first use, so no list can hold them all.
import type { Redis } from 'ioredis';
import { keys } from '../common/keys.js';
import type { Problem } from '../common/validation.js';

// [registry[:port]/]path[:tag][@sha256:digest], loosely: the worker's parser has the last word.
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/:]*(@sha256:[a-f0-9]{64})?$/;

/** "python" and "python:latest" are the same image, as in the store. */
export function normaliseImage(name: string): string {
  if (name.includes('@')) return name;
  const lastSlash = name.lastIndexOf('/');
  return name.lastIndexOf(':') > lastSlash ? name : `${name}:latest`;
}

/** True when the first path component is a registry host (has a dot or a port, or is localhost), as Docker reads it. */
function hasRegistryHost(name: string): boolean {
  const slash = name.indexOf('/');
  return slash > 0 && /[.:]|^localhost$/.test(name.slice(0, slash));
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
    const knownSet = new Set(known.map(normaliseImage));
    return (image, path) => {
      if (!IMAGE_NAME.test(image) || image.includes('//')) {
        return {
          path,
          message: `"${image}" is not an image name: use e.g. python, python:3.11 or host:5000/team/app:1`,
        };
      }
      if (knownSet.size === 0 || hasRegistryHost(image) || knownSet.has(normaliseImage(image))) return null;
      const shown = known.length > 20 ? `${known.slice(0, 20).join(', ')}, ...` : known.join(', ');
      return { path, message: `unknown image "${normaliseImage(image)}"; known images: ${shown}`, known };
    };
  }
}
