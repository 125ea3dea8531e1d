// Images for jobs, from the node's store: used as they are when present, otherwise built from a recipe (a bare
// recipe name such as "python") or pulled from a registry (a name with a registry host), once per name even when
// many jobs ask at the same time. Holding an image (acquire) keeps GC away from its layers while the job runs.
// A pull here is made for a tenant, who chose the registry: it goes under the operator's egress policy and caps,
// and uses the host's registry logins only for the registries LID_REGISTRY_HOST_CREDENTIALS lists.
import type { LidConfig } from '../common/config.js';
import { isLidError, LidError } from '../common/errors.js';
import { ATTR, inSpan } from '../common/telemetry.js';
import type { LidMetrics } from '../common/metrics.js';
import { buildImage } from '../images/build-image.js';
import { listImages } from '../images/catalog.js';
import { listRecipes } from '../images/debian/recipe.js';
import { parseReference } from '../images/reference.js';
import { type PullOptions, pullImage } from '../images/registry/client.js';
import type { ImageStore, ResolvedImage } from '../images/store.js';

/** How pulls for jobs are made: the policy and caps from config, and (for tests) plain HTTP and other auth files. */
export type TenantPullOptions = Pick<
  PullOptions,
  'egress' | 'hostCredentials' | 'maxBytes' | 'timeoutMs' | 'plainHttp' | 'authFiles'
>;

/** The configured policy for pulls made for jobs. */
export function tenantPullOptions(config: LidConfig): TenantPullOptions {
  return {
    egress: { policy: config.egress },
    hostCredentials: config.registryHostCredentials,
    maxBytes: config.pullMaxBytes,
    timeoutMs: config.pullTimeoutMs,
  };
}

export interface ImageProviderOptions {
  pulls: TenantPullOptions;
  /** Counts cache hits (the store had the image) and misses (it had to be built or pulled). */
  metrics?: Pick<LidMetrics, 'imageCacheHits' | 'imageCacheMisses'>;
}

export class ImageProvider {
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly metrics?: ImageProviderOptions['metrics'];

  constructor(
    private readonly store: ImageStore,
    private readonly opts: ImageProviderOptions,
  ) {
    this.metrics = opts.metrics;
  }

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
    if (ref.registry)
      return inSpan('image.pull', { [ATTR.image]: name }, () => pullImage(name, this.store, this.opts.pulls));
    if (ref.tag === 'latest' && !ref.digest && listRecipes().includes(ref.repository))
      return inSpan('image.build', { [ATTR.image]: name }, () => buildImage(this.store, ref.repository));
    throw new LidError(
      'not_found',
      `image ${name} is not on this node and has no recipe or registry to come from (available: ${this.available().join(', ')})`,
    );
  }
}
