// Pulls an image from an OCI distribution (v2) registry into the image store: the manifest (an index resolves to
// this host's platform), then the config and layer blobs the store lacks, then the name. Nothing is trusted that
// was not checked: manifests against the digest they were asked by (or the digest the registry announces), blobs
// against their descriptors, the latter by the store as the bytes stream in. The name is written last, so an
// image is either pulled whole or not named at all.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { z } from 'zod';
import { LidError, isLidError } from '../../common/errors.js';
import { sha256 } from '../digest.js';
import {
  type Descriptor,
  INDEX_TYPES,
  type Index,
  IndexSchema,
  MANIFEST_TYPES,
  MEDIA,
  type Manifest,
  ManifestSchema,
  type Platform,
  hostPlatform,
  parseJson,
  selectPlatform,
} from '../oci.js';
import { formatReference, parseReference } from '../reference.js';
import type { ImageStore, Progress } from '../store.js';
import { RegistrySession } from './auth.js';
import { type AuthFileOptions, type Credentials, findCredentials } from './credentials.js';

export interface PullOptions {
  /** Explicit credentials (--creds); otherwise the standard auth files are searched. */
  creds?: Credentials;
  /** Speak http instead of https (--plain-http): for a registry on loopback. */
  plainHttp?: boolean;
  /** Where to look for auth files (tests point this at temporary ones). */
  authFiles?: AuthFileOptions;
  /** The platform to pick from a multi-arch index (default: this host's). */
  platform?: Platform;
  /** Bytes downloaded across all blobs of the image; called often, the caller decides how to show it. */
  onProgress?: Progress;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

const DOCKER_HUB_HOST = 'registry-1.docker.io';
const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerManifestList, MEDIA.dockerManifest].join(', ');
const MAX_MANIFEST_BYTES = 4 << 20; // manifests are small; a bigger one is a broken or hostile registry
const PARALLEL_DOWNLOADS = 3;

/** Pulls `reference` ("host[:port]/repo[:tag|@digest]") into the store and names it; returns the name and digest. */
export async function pullImage(
  reference: string,
  store: ImageStore,
  opts: PullOptions = {},
): Promise<{ name: string; manifestDigest: string }> {
  const ref = parseReference(reference);
  const target = registryTarget(ref.registry, ref.repository);
  const name = formatReference(ref);
  const base = `${opts.plainHttp ? 'http' : 'https'}://${target.host}`;
  const session = new RegistrySession({
    registry: target.host,
    creds: findCredentials(target.host, { ...opts.authFiles, explicit: opts.creds }),
    base,
    plainHttp: opts.plainHttp ?? false,
    fetch: opts.fetch ?? fetch,
    signal: opts.signal,
  });
  const repo: Repo = { session, base, host: target.host, repository: target.repository, name };

  const top = await fetchManifest(repo, ref.digest ?? ref.tag ?? 'latest', ref.digest);
  let index: FetchedManifest | undefined;
  let manifest = top;
  let decoded = decode(top, top.contentType, name);
  if (decoded.kind === 'index') {
    index = top;
    const want = opts.platform ?? hostPlatform();
    const entry = selectPlatform(decoded.index, want);
    if (!entry) throw noPlatform(name, want, decoded.index);
    manifest = await fetchManifest(repo, entry.digest, entry.digest, entry.size);
    decoded = decode(manifest, manifest.contentType, name);
    if (decoded.kind === 'index') {
      throw new LidError('unsupported', `image ${name}: the index entry for ${platformText(want)} is itself an index`);
    }
  }
  const parsed = decoded.manifest;

  await downloadBlobs(repo, store, [parsed.config, ...parsed.layers], opts);
  // Manifests go in last and byte for byte: their digest is what names them, and re-serialising would change it.
  if (index) await store.putBlob(index.bytes, { digest: index.digest, size: index.bytes.length });
  await store.putBlob(manifest.bytes, { digest: manifest.digest, size: manifest.bytes.length });
  const tagged = await store.tag(name, manifest.digest);
  return { name: tagged, manifestDigest: manifest.digest };
}

interface Repo {
  session: RegistrySession;
  base: string;
  host: string;
  repository: string;
  /** The image's name, for messages. */
  name: string;
}

interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  contentType: string | null;
}

/** Where a reference lives: a name without a registry host is on Docker Hub, where official images sit under library/. */
function registryTarget(registry: string | undefined, repository: string): { host: string; repository: string } {
  if (registry && registry !== 'docker.io' && registry !== 'index.docker.io') return { host: registry, repository };
  return { host: DOCKER_HUB_HOST, repository: repository.includes('/') ? repository : `library/${repository}` };
}

function scopeOf(repo: Repo): string {
  return `repository:${repo.repository}:pull`;
}

/** GETs a manifest by tag or digest and checks its bytes against `digest` (or the registry's announced one). */
async function fetchManifest(
  repo: Repo,
  tagOrDigest: string,
  digest?: string,
  size?: number,
): Promise<FetchedManifest> {
  const url = `${repo.base}/v2/${repo.repository}/manifests/${tagOrDigest}`;
  const res = await repo.session.get(url, scopeOf(repo), { accept: ACCEPT });
  if (res.status === 404) {
    await res.body?.cancel();
    throw new LidError('not_found', `image ${repo.name} not found in registry ${repo.host}`, { registry: repo.host });
  }
  if (!res.ok) throw await httpError(repo, res, `the manifest of ${repo.name}`);
  const bytes = await readSmallBody(res, Math.min(size ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES), () => {
    const limit = size === undefined ? `the ${MAX_MANIFEST_BYTES}-byte limit` : `its descriptor's ${size} bytes`;
    return new LidError('invalid_image', `registry ${repo.host} sent a manifest for ${repo.name} larger than ${limit}`);
  });
  const actual = sha256(bytes);
  const announced = res.headers.get('docker-content-digest') ?? undefined;
  const expected = digest ?? (announced?.startsWith('sha256:') ? announced : undefined);
  if (expected && actual !== expected) {
    throw new LidError(
      'invalid_image',
      `registry ${repo.host} sent a manifest for ${repo.name} whose content does not match its digest: expected ${expected}, got ${actual}`,
    );
  }
  if (size !== undefined && bytes.length !== size) {
    throw new LidError(
      'invalid_image',
      `registry ${repo.host} sent a ${bytes.length}-byte manifest for ${repo.name}, its descriptor says ${size}`,
    );
  }
  return { bytes, digest: actual, contentType: res.headers.get('content-type') };
}

/** Reads a body that must be small, refusing more than `limit` bytes whatever Content-Length claimed (if anything). */
async function readSmallBody(res: Response, limit: number, tooBig: () => LidError): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw tooBig();
      chunks.push(chunk);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks);
}

type Decoded = { kind: 'index'; index: Index } | { kind: 'manifest'; manifest: Manifest };

/**
 * Reads a fetched manifest as an index or an image manifest. Its own mediaType field wins over Content-Type, which
 * registries are known to get wrong; an OCI index may omit both, and then "manifests" is what gives it away.
 */
function decode(m: FetchedManifest, contentType: string | null, name: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(m.bytes.toString('utf8'));
  } catch {
    throw new LidError('invalid_image', `the manifest of ${name} (${m.digest}) is not valid JSON`);
  }
  const fields = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const declared = typeof fields.mediaType === 'string' ? fields.mediaType : undefined;
  const type = declared ?? ('manifests' in fields ? MEDIA.ociIndex : (contentType ?? '').split(';')[0]!.trim());
  const parse = <T>(schema: z.ZodType<T>, what: string): T => {
    try {
      return parseJson(schema, m.bytes, `${what} of ${name} (${m.digest})`);
    } catch (e) {
      throw new LidError('invalid_image', (e as Error).message);
    }
  };
  if (INDEX_TYPES.includes(type)) return { kind: 'index', index: parse(IndexSchema, 'the index') };
  if (MANIFEST_TYPES.includes(type) || (!declared && 'config' in fields)) {
    return { kind: 'manifest', manifest: parse(ManifestSchema, 'the manifest') };
  }
  throw new LidError(
    'unsupported',
    `image ${name} has a manifest of type ${type || '(none given)'}, which Lid does not pull: it takes OCI and Docker v2 schema 2 images`,
  );
}

function platformText(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function noPlatform(name: string, want: Platform, index: Index): LidError {
  const available = index.manifests.flatMap((m) => (m.platform ? [platformText(m.platform)] : []));
  return new LidError(
    'not_found',
    `image ${name} has no variant for ${platformText(want)} (available: ${available.join(', ') || 'none listed'})`,
    { available },
  );
}

/** Downloads the blobs the store lacks, a few at a time; the first failure cancels the others. */
async function downloadBlobs(repo: Repo, store: ImageStore, blobs: Descriptor[], opts: PullOptions): Promise<void> {
  const missing = [...new Map(blobs.map((b) => [b.digest, b])).values()].filter((b) => !store.hasBlob(b.digest));
  const total = missing.reduce((sum, b) => sum + b.size, 0);
  let done = 0;
  const report = (bytes: number) => {
    done += bytes;
    opts.onProgress?.(`pulling ${repo.name}`, done, total);
  };
  const cancel = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, cancel.signal]) : cancel.signal;
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < missing.length) {
      const blob = missing[next++]!;
      try {
        await downloadBlob(repo, store, blob, signal, report);
      } catch (error) {
        failure ??= { error };
        cancel.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_DOWNLOADS, missing.length) }, worker));
  if (failure) throw failure.error;
}

async function downloadBlob(
  repo: Repo,
  store: ImageStore,
  blob: Descriptor,
  signal: AbortSignal,
  report: (bytes: number) => void,
): Promise<void> {
  const url = `${repo.base}/v2/${repo.repository}/blobs/${blob.digest}`;
  const res = await repo.session.get(url, scopeOf(repo), {}, signal); // fetch follows redirects to blob storage
  if (res.status === 404) {
    await res.body?.cancel();
    throw new LidError('not_found', `registry ${repo.host} lacks blob ${blob.digest} of image ${repo.name}`);
  }
  if (!res.ok || !res.body) throw await httpError(repo, res, `blob ${blob.digest} of ${repo.name}`);
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  // The store checks size and digest at the end; stopping as soon as there is too much spares the disk.
  async function* counted(): AsyncGenerator<Uint8Array> {
    let received = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > blob.size) {
        throw new LidError('invalid_image', `blob ${blob.digest} is larger than its descriptor's ${blob.size} bytes`);
      }
      report(chunk.length);
      yield chunk;
    }
  }
  try {
    await store.putBlob(counted(), { digest: blob.digest, size: blob.size });
  } catch (e) {
    // The store says what is wrong with the bytes; the user also needs to know where they came from.
    if (isLidError(e) && e.code === 'invalid_image' && !e.message.includes(repo.host)) {
      throw new LidError(
        'invalid_image',
        `registry ${repo.host} sent a bad blob for ${repo.name}: ${e.message}`,
        e.details,
      );
    }
    throw e;
  } finally {
    body.destroy();
  }
}

/** A non-2xx answer as a LidError carrying the registry's own error text (the spec's {errors: [{code, message}]}). */
async function httpError(repo: Repo, res: Response, what: string): Promise<LidError> {
  const text = await res.text().catch(() => '');
  let detail = '';
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    detail = (parsed.errors ?? [])
      .map((e) => [e.code, e.message].filter((x) => typeof x === 'string').join(': '))
      .join('; ');
  } catch {
    detail = text.slice(0, 200).trim();
  }
  const suffix = detail ? `: ${detail}` : '';
  if (res.status === 403) {
    return new LidError(
      'invalid_spec',
      `registry ${repo.host} denied access to ${what}${suffix}: check that your credentials may pull ${repo.repository}`,
    );
  }
  const message = `registry ${repo.host} answered ${res.status} ${res.statusText} for ${what}${suffix}`;
  return new LidError('setup_failed', message, { registry: repo.host, status: res.status });
}
