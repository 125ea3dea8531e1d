// Imports images the way people already have them: an OCI image layout directory or its tar (oci-archive), as
// skopeo, umoci, buildah and podman write them, and a docker-archive (`docker save`), tar or directory; one image of
// several is chosen with SOURCE:REF (import-source.ts). Every blob is copied through the store's verifying putBlob;
// archives are first extracted to a private temporary directory (with the same refusal of unsafe paths as layers),
// because their index may come after the blobs it names. Importing an image the store already has changes nothing
// and says so.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { LidError } from '../common/errors.js';
import { chooseArchiveEntries, chooseLayoutEntries, parseImportSource, REF_NAME } from './import-source.js';
import { type Descriptor, INDEX_TYPES, IndexSchema, MEDIA, parseJson, selectPlatform } from './oci.js';
import type { ImageStore, Progress } from './store.js';

export interface ImportedImage {
  name: string;
  manifestDigest: string;
  /** The name already pointed at this image: nothing changed. */
  unchanged: boolean;
}

/** What one import reads: the unpacked source, how the user spelled it (for messages), and the choices made. */
interface ImportContext {
  store: ImageStore;
  dir: string;
  label: string;
  ref?: string;
  name?: string;
  onProgress?: Progress;
}

function isGzip(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return fs.readSync(fd, head, 0, 2, 0) === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Extracts an archive's regular files and directories (nothing else is needed from an image archive). */
async function extractArchive(file: string, dest: string): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const name = path.posix.normalize(header.name);
    if (name.startsWith('/') || name.split('/').includes('..')) {
      stream.resume();
      return next(new LidError('invalid_image', `archive entry ${JSON.stringify(header.name)} escapes the archive`));
    }
    const target = path.join(dest, name);
    if (header.type === 'directory') {
      fs.mkdirSync(target, { recursive: true });
      stream.resume();
      return stream.on('end', () => next());
    }
    if (header.type !== 'file') {
      stream.resume();
      return stream.on('end', () => next()); // links and the like are not part of either archive format's blobs
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    pipeline(stream, fs.createWriteStream(target, { flags: 'wx' })).then(() => next(), next);
  });
  const input = fs.createReadStream(file);
  await (isGzip(file) ? pipeline(input, createGunzip(), extract) : pipeline(input, extract));
}

/** Copies a blob the store lacks; one it has is left alone, its file not even opened. */
async function copyBlob(store: ImageStore, dir: string, d: Descriptor): Promise<void> {
  if (store.hasBlob(d.digest)) return;
  const file = path.join(dir, 'blobs', 'sha256', d.digest.slice(7));
  if (!fs.existsSync(file)) throw new LidError('invalid_image', `the layout lacks blob ${d.digest}`);
  await store.putBlob(fs.createReadStream(file), { digest: d.digest, size: d.size });
}

async function importOciLayout(ctx: ImportContext): Promise<ImportedImage[]> {
  const { store, dir, name, onProgress } = ctx;
  const index = parseJson(IndexSchema, fs.readFileSync(path.join(dir, 'index.json')), 'index.json');
  const entries = chooseLayoutEntries(index.manifests, ctx.label, ctx.ref, name);
  const imported: ImportedImage[] = [];
  for (const entry of entries) {
    let manifestDesc = entry;
    if (INDEX_TYPES.includes(entry.mediaType)) {
      const nested = parseJson(
        IndexSchema,
        fs.readFileSync(path.join(dir, 'blobs', 'sha256', entry.digest.slice(7))),
        `index ${entry.digest}`,
      );
      const chosen = selectPlatform(nested);
      if (!chosen) throw new LidError('not_found', `index ${entry.digest} has no image for this host's platform`);
      manifestDesc = chosen;
    }
    const annotated = entry.annotations?.[REF_NAME];
    // skopeo's oci:DIR:TAG records only the tag: a bare word is a tag, not a name.
    const ref = name ?? (annotated && /[/:]/.test(annotated) ? annotated : undefined);
    if (!ref) {
      throw new LidError(
        'invalid_spec',
        `the image in ${ctx.label} has no name${annotated ? ` (only the tag "${annotated}")` : ''}: give one with --name NAME:TAG`,
      );
    }
    await copyBlob(store, dir, manifestDesc);
    const manifest = store.manifest(manifestDesc.digest);
    const blobs = [manifest.config, ...manifest.layers];
    for (const [i, d] of blobs.entries()) {
      onProgress?.('copying blobs', i, blobs.length);
      await copyBlob(store, dir, d);
    }
    imported.push({ ...(await store.tag(ref, manifestDesc.digest)), manifestDigest: manifestDesc.digest });
  }
  if (imported.length === 0) throw new LidError('invalid_image', `${ctx.label}: index.json lists no image`);
  return imported;
}

interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function importDockerArchive(ctx: ImportContext): Promise<ImportedImage[]> {
  const { store, dir, name, onProgress } = ctx;
  const all = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as DockerArchiveEntry[];
  if (!Array.isArray(all) || all.length === 0) throw new LidError('invalid_image', 'manifest.json lists no image');
  const entries = chooseArchiveEntries(all, ctx.label, ctx.ref);
  if (name && entries.length > 1) {
    throw new LidError(
      'invalid_spec',
      `the archive holds ${entries.length} images: import it without --name, or choose one with ${ctx.label}:REF`,
    );
  }
  const inside = (rel: string) => {
    const p = path.resolve(dir, rel);
    if (!p.startsWith(`${dir}/`))
      throw new LidError('invalid_image', `manifest.json names ${JSON.stringify(rel)}, outside the archive`);
    return p;
  };
  const imported: ImportedImage[] = [];
  for (const entry of entries) {
    const config = await store.putBlob(fs.createReadStream(inside(entry.Config)));
    const layers = [];
    for (const [i, rel] of entry.Layers.entries()) {
      onProgress?.('copying layers', i, entry.Layers.length);
      const file = inside(rel);
      const blob = await store.putBlob(fs.createReadStream(file));
      layers.push({ mediaType: isGzip(file) ? MEDIA.ociLayerGzip : MEDIA.ociLayerTar, ...blob });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, ...config },
      layers,
    };
    const { digest } = await store.putBlob(Buffer.from(JSON.stringify(manifest)));
    const names = name ? [name] : ctx.ref ? [ctx.ref] : (entry.RepoTags ?? []);
    if (names.length === 0)
      throw new LidError('invalid_spec', 'the archive does not name its image: give one with --name NAME:TAG');
    for (const n of names) imported.push({ ...(await store.tag(n, digest)), manifestDigest: digest });
  }
  return imported;
}

/**
 * Imports the image `source` names (SOURCE:REF), or every image of an OCI layout holding one or of a docker-archive,
 * from a directory or a tar. `name` names the image in the store.
 */
export async function importImage(
  store: ImageStore,
  source: string,
  opts: { name?: string; onProgress?: Progress } = {},
): Promise<ImportedImage[]> {
  const { path: file, ref } = parseImportSource(source);
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new LidError('not_found', `${file} does not exist`);
  const ctx: ImportContext = { store, dir: path.resolve(file), label: file, ref, ...opts };
  let extracted: string | null = null;
  try {
    if (st.isFile()) {
      extracted = store.tempPath('import');
      opts.onProgress?.('extracting archive', 0, 1);
      await extractArchive(file, extracted);
      ctx.dir = extracted;
    }
    if (fs.existsSync(path.join(ctx.dir, 'oci-layout')) && fs.existsSync(path.join(ctx.dir, 'index.json'))) {
      return await importOciLayout(ctx);
    }
    if (fs.existsSync(path.join(ctx.dir, 'manifest.json'))) return await importDockerArchive(ctx);
    throw new LidError(
      'invalid_image',
      `${file} is neither an OCI image layout (oci-layout + index.json) nor a docker-archive (manifest.json)`,
    );
  } finally {
    if (extracted) fs.rmSync(extracted, { recursive: true, force: true });
  }
}
