// Images for jobs, from the node's store: used as they are when present, otherwise built from a recipe (a bare
// recipe name such as "python") or pulled from a registry (a name with a registry host), once per name even when
// many jobs ask at the same time. Holding an image (acquire) keeps GC away from its layers while the job runs.
import { isLidError, LidError } from '../common/errors.js';
import { ATTR, inSpan } from '../common/telemetry.js';
import type { LidMetrics } from '../common/metrics.js';
import { buildImage } from '../images/build-image.js';
import { listImages } from '../images/catalog.js';
import { listRecipes } from '../images/debian/recipe.js';
import { parseReference } from '../images/reference.js';
import { pullImage } from '../images/registry/client.js';
import type { ImageStore, ResolvedImage } from '../images/store.js';

export class ImageProvider {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: ImageStore,
    /** Counts cache hits (the store had the image) and misses (it had to be built or pulled). */
    private readonly metrics?: Pick<LidMetrics, 'imageCacheHits' | 'imageCacheMisses'>,
  ) {}

  /** Names jobs may ask for on this node: what the store has, and every recipe (built on first use). */
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

  async acquire(name: string): Promise<{ image: ResolvedImage; release: () => void }> {
    try {
      const held = await this.store.acquire(name);
      this.metrics?.imageCacheHits.inc();
      return held;
    } catch (e) {
      if (!isLidError(e) || e.code !== 'not_found') throw e;
    }
    this.metrics?.imageCacheMisses.inc();
    await this.fetchOnce(name);
    return this.store.acquire(name);
  }

  private fetchOnce(name: string): Promise<unknown> {
    let pending = this.inFlight.get(name);
    if (!pending) {
      pending = this.fetch(name).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, pending);
    }
    return pending;
  }

  private async fetch(name: string): Promise<unknown> {
    const ref = parseReference(name);
    // The span is a child of the image.resolve of the job that asked first; jobs asking meanwhile share its wait.
    if (ref.registry) return inSpan('image.pull', { [ATTR.image]: name }, () => pullImage(name, this.store, {}));
    if (ref.tag === 'latest' && !ref.digest && listRecipes().includes(ref.repository))
      return inSpan('image.build', { [ATTR.image]: name }, () => buildImage(this.store, ref.repository));
    throw new LidError(
      'not_found',
      `image ${name} is not on this node and has no recipe or registry to come from (available: ${this.available().join(', ')})`,
    );
  }
}
