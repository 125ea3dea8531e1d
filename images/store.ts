// The image store: blobs by sha256 digest, each layer unpacked once into its own read-only directory, and names
// (name:tag) pointing at manifests. Everything lives under LID_DATA_DIR (store-layout.ts) and survives restarts.
// Several processes may share one store: blob writes and layer unpacks go to private temporary paths and are
// renamed into place (a crash never leaves a half blob or half layer where it would be used), one process unpacks
// a given layer while the others wait for it (a lock per layer), and names change under a lock with an atomic
// rename of refs.json. Resolving an image that is already unpacked reads nothing from disk but one stat.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { withDirLock as withLock } from '../common/dir-lock.js';
import { LidError } from '../common/errors.js';
import { currentInstanceName, isInstanceDead } from '../common/process-instance.js';
import { AccessLog } from './access-log.js';
import { DigestingStream } from './digest.js';
import { Leases } from './leases.js';
import { type ImageConfig, ImageConfigSchema, type Manifest, ManifestSchema, parseJson } from './oci.js';
import { normalizeName } from '../common/image-reference.js';
import { StoreLayout } from './store-layout.js';
import { makeStorePrivate } from './store-privacy.js';
import { unpackLayer } from './unpack.js';

export interface ResolvedImage {
  name: string;
  manifestDigest: string;
  config: ImageConfig;
  /** Unpacked layer directories, bottom first: what the runtime stacks. */
  layerDirs: string[];
  layerDigests: string[];
}

/** Progress of a long step: bytes unless `unit` says the counts are items (packages, files). */
export type Progress = (what: string, done: number, total: number, unit?: 'bytes' | 'items') => void;

type BlobSource = Readable | AsyncIterable<Uint8Array> | Uint8Array;

/**
 * Lets go of a source whose bytes are not needed. A file stream may not be open yet: left alone, it would open
 * later, and once its file is gone (an extracted archive, a built layout, both removed right after) its error
 * would be unhandled and end the process.
 */
function discard(source: BlobSource): void {
  if (source instanceof Readable) {
    source.on('error', () => {});
    source.destroy();
  } else if (!(source instanceof Uint8Array)) {
    Promise.resolve(source[Symbol.asyncIterator]().return?.()).catch(() => {});
  }
}

export class ImageStore {
  readonly layout: StoreLayout;
  private readonly instance = currentInstanceName();
  private tmpCounter = 0;
  private refsCache: { mtimeMs: number; refs: Record<string, string> } | null = null;
  private readonly resolved = new Map<string, ResolvedImage>(); // by manifest digest
  private readonly unpacked = new Set<string>(); // layer digests known to be in place
  private readonly leases: Leases;
  /** When each image was last used (for gc --max-size and lid images ls). */
  readonly access: AccessLog;
  /** Layers this process unpacked itself (the rest it found done, or waited for another process to do). */
  layersUnpackedHere = 0;

  private constructor(dataDir: string) {
    this.layout = new StoreLayout(dataDir);
    this.leases = new Leases(this.layout);
    this.access = new AccessLog(this.layout, (label) => this.tempPath(label));
    makeStorePrivate(dataDir, this.layout); // makes the directories, 0700, and fixes an older store's modes
    this.sweepTemporaries();
  }

  static open(dataDir: string): ImageStore {
    return new ImageStore(dataDir);
  }

  /** Removes partial files and leases of processes that are gone (a crash mid-download or mid-unpack). */
  private sweepTemporaries(): void {
    for (const name of fs.readdirSync(this.layout.tmpDir)) {
      if (isInstanceDead(name)) fs.rmSync(path.join(this.layout.tmpDir, name), { recursive: true, force: true });
    }
    for (const name of fs.readdirSync(this.layout.leasesDir)) {
      if (isInstanceDead(name)) fs.rmSync(path.join(this.layout.leasesDir, name), { force: true });
    }
  }

  /** A fresh path under tmp/ named after this process, so a later sweep knows whose it is. */
  tempPath(label: string): string {
    return path.join(this.layout.tmpDir, `${this.instance}-${++this.tmpCounter}-${label}`);
  }

  hasBlob(digest: string): boolean {
    return fs.existsSync(this.layout.blob(digest));
  }

  blobPath(digest: string): string {
    return this.layout.blob(digest);
  }

  readBlob(digest: string): Buffer {
    try {
      return fs.readFileSync(this.layout.blob(digest));
    } catch {
      throw new LidError('not_found', `blob ${digest} is not in the image store`);
    }
  }

  /**
   * Stores a blob, verifying it against the expected digest and size when given. The blob appears under its
   * digest only once every byte has been checked; on a mismatch nothing is kept. The source is the store's once
   * handed over: read to its end, or closed unread when the blob is already here.
   */
  async putBlob(
    source: BlobSource,
    expected: { digest?: string; size?: number } = {},
  ): Promise<{ digest: string; size: number }> {
    if (expected.digest && this.hasBlob(expected.digest)) {
      discard(source);
      return { digest: expected.digest, size: fs.statSync(this.layout.blob(expected.digest)).size };
    }
    const tmp = this.tempPath('blob');
    const hasher = new DigestingStream();
    try {
      const input = source instanceof Uint8Array ? Readable.from([source]) : Readable.from(source);
      // Opened now, not by the stream: a source that fails at once would let a late asynchronous open recreate
      // the file after the cleanup below removed it.
      await pipeline(input, hasher, fs.createWriteStream(tmp, { fd: fs.openSync(tmp, 'w', 0o644) }));
      const digest = hasher.digest();
      if (expected.digest && digest !== expected.digest) {
        throw new LidError(
          'invalid_image',
          `blob content does not match its digest: expected ${expected.digest}, got ${digest}`,
        );
      }
      if (expected.size !== undefined && hasher.bytes !== expected.size) {
        throw new LidError(
          'invalid_image',
          `blob ${digest} has ${hasher.bytes} bytes, its descriptor says ${expected.size}`,
        );
      }
      fs.renameSync(tmp, this.layout.blob(digest));
      return { digest, size: hasher.bytes };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  manifest(digest: string): Manifest {
    return parseJson(ManifestSchema, this.readBlob(digest), `manifest ${digest}`);
  }

  config(manifest: Manifest): ImageConfig {
    return parseJson(
      ImageConfigSchema,
      this.readBlob(manifest.config.digest),
      `image config ${manifest.config.digest}`,
    );
  }

  /** name:tag -> manifest digest, re-read only when refs.json changed. */
  refs(): Record<string, string> {
    const st = fs.statSync(this.layout.refsFile, { throwIfNoEntry: false });
    if (!st) return {};
    if (this.refsCache?.mtimeMs !== st.mtimeMs) {
      this.refsCache = {
        mtimeMs: st.mtimeMs,
        refs: JSON.parse(fs.readFileSync(this.layout.refsFile, 'utf8')) as Record<string, string>,
      };
    }
    return this.refsCache.refs;
  }

  /** Changes names under the store's lock; refs.json is replaced atomically. */
  async updateRefs(change: (refs: Record<string, string>) => void): Promise<void> {
    await withLock(this.layout.refsLock, async () => {
      this.refsCache = null;
      const refs = { ...this.refs() };
      change(refs);
      const tmp = this.tempPath('refs');
      fs.writeFileSync(tmp, `${JSON.stringify(refs, Object.keys(refs).sort(), 2)}\n`);
      fs.renameSync(tmp, this.layout.refsFile);
      this.refsCache = null;
    });
  }

  /**
   * Names an image whose manifest, config and layer blobs are all in the store. `unchanged` says the name already
   * pointed at this very manifest (an image imported, built or pulled again).
   */
  async tag(name: string, manifestDigest: string): Promise<{ name: string; unchanged: boolean }> {
    const key = normalizeName(name);
    const manifest = this.manifest(manifestDigest);
    for (const d of [manifest.config, ...manifest.layers]) {
      if (!this.hasBlob(d.digest))
        throw new LidError('invalid_image', `image ${key} is incomplete: blob ${d.digest} is missing`);
    }
    const config = this.config(manifest);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new LidError(
        'invalid_image',
        `image ${key}: the config lists ${config.rootfs.diff_ids.length} layers, the manifest ${manifest.layers.length}`,
      );
    }
    let unchanged = false;
    await this.updateRefs((refs) => {
      unchanged = refs[key] === manifestDigest;
      refs[key] = manifestDigest;
    });
    return { name: key, unchanged };
  }

  lookup(name: string): string {
    const key = normalizeName(name);
    const digest = this.refs()[key];
    if (!digest) {
      const known = Object.keys(this.refs()).sort();
      throw new LidError(
        'not_found',
        `no image named ${key} in the store${known.length ? ` (have: ${known.join(', ')})` : ''}`,
      );
    }
    return digest;
  }

  /** The image's layer directories (unpacking any that are missing) and its config. */
  async resolve(name: string, onProgress?: Progress): Promise<ResolvedImage> {
    const manifestDigest = this.lookup(name);
    const cached = this.resolved.get(manifestDigest);
    if (cached) return { ...cached, name: normalizeName(name) };
    const manifest = this.manifest(manifestDigest);
    const config = this.config(manifest);
    const layerDirs: string[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      layerDirs.push(await this.ensureLayer(layer.digest, layer.mediaType, config.rootfs.diff_ids[i]!, onProgress));
    }
    const image = {
      name: normalizeName(name),
      manifestDigest,
      config,
      layerDirs,
      layerDigests: manifest.layers.map((l) => l.digest),
    };
    this.resolved.set(manifestDigest, image);
    return image;
  }

  /**
   * Resolves an image and holds its layers until `release()`: garbage collection, in this process or another,
   * leaves them alone meanwhile. The lease is taken before the layers are looked at, so GC cannot slip in between.
   */
  async acquire(name: string, onProgress?: Progress): Promise<{ image: ResolvedImage; release: () => void }> {
    const manifest = this.manifest(this.lookup(name));
    const release = this.leases.acquire([manifest.config.digest, ...manifest.layers.map((l) => l.digest)]);
    try {
      const image = await this.resolve(name, onProgress);
      this.access.touch(image.name);
      return { image, release };
    } catch (e) {
      release();
      throw e;
    }
  }

  /** Unpacks a layer once across every process sharing the store; the others wait and then use it. */
  private async ensureLayer(digest: string, mediaType: string, diffId: string, onProgress?: Progress): Promise<string> {
    const dir = this.layout.layer(digest);
    if (this.unpacked.has(digest) || fs.existsSync(dir)) {
      this.unpacked.add(digest);
      return dir;
    }
    await withLock(this.layout.layerLock(digest), async () => {
      if (!fs.existsSync(dir)) {
        const tmp = this.tempPath('layer');
        const total = fs.statSync(this.blobPath(digest)).size;
        try {
          const result = await unpackLayer({
            blobPath: this.blobPath(digest),
            mediaType,
            dest: tmp,
            onProgress: (done: number) => onProgress?.(`unpacking ${digest.slice(7, 19)}`, done, total),
          });
          if (result.diffId !== diffId) {
            throw new LidError(
              'invalid_image',
              `layer ${digest} unpacks to ${result.diffId}, but the image config says ${diffId}`,
            );
          }
          fs.renameSync(tmp, dir); // atomic: a layer directory is either absent or complete
          this.layersUnpackedHere++;
        } finally {
          fs.rmSync(tmp, { recursive: true, force: true });
        }
      }
    });
    this.unpacked.add(digest);
    return dir;
  }
}
