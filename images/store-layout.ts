// Where the image store keeps things under LID_DATA_DIR, in one place:
//   images/blobs/sha256/<hex>      content-addressed blobs: manifests, configs, compressed layers
//   images/layers/sha256/<hex>/    each layer unpacked once (keyed by its blob digest), read-only to jobs
//   images/refs.json               name:tag -> manifest digest (replaced atomically)
//   images/access.json             name:tag -> last use (for the LRU size cap)
//   images/leases/<instance>.json  layers a live process is using (GC never deletes those)
//   images/tmp/<instance>-<n>      partial downloads and unpacks; swept once their process is gone
//   images/locks/                  lock files (proper-lockfile) for the refs and for each layer's unpack
//   images/.private-v1             marks a store whose layers were swept of setuid/setgid bits (store-privacy.ts)
// images/ and every directory above a layer's own are 0700 root (store-privacy.ts says why).
import path from 'node:path';
import { digestHex } from './digest.js';

export class StoreLayout {
  readonly root: string;
  constructor(dataDir: string) {
    this.root = path.resolve(dataDir, 'images');
  }
  get blobsDir(): string {
    return path.join(this.root, 'blobs', 'sha256');
  }
  get layersDir(): string {
    return path.join(this.root, 'layers', 'sha256');
  }
  get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }
  get locksDir(): string {
    return path.join(this.root, 'locks');
  }
  get leasesDir(): string {
    return path.join(this.root, 'leases');
  }
  get refsFile(): string {
    return path.join(this.root, 'refs.json');
  }
  get accessFile(): string {
    return path.join(this.root, 'access.json');
  }
  blob(digest: string): string {
    return path.join(this.blobsDir, digestHex(digest));
  }
  layer(digest: string): string {
    return path.join(this.layersDir, digestHex(digest));
  }
  layerLock(digest: string): string {
    return path.join(this.locksDir, `layer-${digestHex(digest)}`);
  }
  get refsLock(): string {
    return path.join(this.locksDir, 'refs');
  }
  /** The store's own directories below images/, parents first: each one 0700. */
  get privateDirs(): string[] {
    const { root } = this;
    const blobs = path.join(root, 'blobs');
    const layers = path.join(root, 'layers');
    return [blobs, this.blobsDir, layers, this.layersDir, this.tmpDir, this.locksDir, this.leasesDir];
  }
  get privateMarker(): string {
    return path.join(this.root, '.private-v1');
  }
}
