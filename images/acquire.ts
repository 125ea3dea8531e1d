// The one way an image becomes a job's root, for the worker and for `lid sandbox run --image` alike: the store's
// image when it has one; otherwise built from its recipe (a bare recipe name such as "python"), or pulled from its
// registry (a name with a registry host) under a PullPolicy that says whose pull it is (pull-policy.ts). A missing
// image is fetched once per name even when many jobs ask at the same time. Holding an image (acquire) keeps GC
// away from its layers until release. What callers differ in comes in as hooks: the worker counts cache hits and
// misses, the CLI says what it is fetching and draws progress.
import { isLidError, LidError } from '../common/errors.js';
import { ATTR, inSpan } from '../common/telemetry.js';
import { buildImage } from './build-image.js';
import { listImages } from './catalog.js';
import { listRecipes } from './debian/recipe.js';
import type { PullPolicy } from './pull-policy.js';
import { formatReference, normalizeName, parseReference } from '../common/image-reference.js';
import { pullImage } from './registry/client.js';
import type { ImageStore, Progress, ResolvedImage } from './store.js';

export interface ImageAcquirerOptions {
  /** How images from registries are pulled: tenantPulls(config) for jobs, operatorPulls(config) for the operator. */
  pulls: PullPolicy;
  /** The store had the image. */
  onCacheHit?: () => void;
  /** The image had to be built or pulled (counted once per acquire, whoever fetched it). */
  onCacheMiss?: () => void;
  /** A build or pull is starting (once per fetch). */
  onFetch?: (name: string, how: 'build' | 'pull') => void;
  /** Progress of builds, pulls and unpacks. */
  onProgress?: Progress;
}

export interface HeldImage {
  image: ResolvedImage;
  /** Lets GC have the image's layers again (idempotent). */
  release: () => void;
}

export class ImageAcquirer {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: ImageStore,
    private readonly opts: ImageAcquirerOptions,
  ) {}

  /** Names jobs may ask for here: what the store has, and every recipe (built on first use). */
  available(): string[] {
    const have = listImages(this.store).map((i) => i.name);
    return [...new Set([...have, ...listRecipes().map((r) => `${r}:latest`)])].sort();
  }

  /** Compressed bytes of the distinct blobs (configs and layers) the store's images name: shared layers count once. */
  storedBytes(): number {
    const sizes = new Map<string, number>();
    for (const digest of Object.values(this.store.refs())) {
      const manifest = this.store.manifest(digest);
      for (const blob of [manifest.config, ...manifest.layers]) sizes.set(blob.digest, blob.size);
    }
    return [...sizes.values()].reduce((n, size) => n + size, 0);
  }

  /** The image, fetched first if the store lacks it, held until `release()`. */
  async acquire(name: string): Promise<HeldImage> {
    try {
      const held = await this.store.acquire(name, this.opts.onProgress);
      this.opts.onCacheHit?.();
      return held;
    } catch (e) {
      if (!isLidError(e) || e.code !== 'not_found') throw e;
    }
    this.opts.onCacheMiss?.();
    await this.fetchOnce(name);
    return this.store.acquire(name, this.opts.onProgress);
  }

  /** One fetch per image, however it is spelled ("python" and "python:latest" are one). */
  private fetchOnce(name: string): Promise<unknown> {
    const key = normalizeName(name);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetch(name).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async fetch(name: string): Promise<unknown> {
    const ref = parseReference(name);
    const { onFetch, onProgress } = this.opts;
    // The span is a child of the image.resolve of the job that asked first; jobs asking meanwhile share its wait.
    if (ref.registry) {
      onFetch?.(name, 'pull');
      return inSpan('image.pull', { [ATTR.image]: name }, () =>
        pullImage(name, this.store, { ...this.opts.pulls, onProgress }),
      );
    }
    if (ref.tag === 'latest' && !ref.digest && listRecipes().includes(ref.repository)) {
      onFetch?.(ref.repository, 'build');
      return inSpan('image.build', { [ATTR.image]: name }, () => buildImage(this.store, ref.repository, onProgress));
    }
    throw new LidError(
      'not_found',
      `no image named ${formatReference(ref)} on this node, and no recipe or registry to get it from (available: ${this.available().join(', ')})`,
    );
  }
}
