// Pulls an image from an OCI distribution (v2) registry into the image store: the manifest (an index resolves to
// this host's platform), then the config and layer blobs the store lacks, then the name. Nothing is trusted that
// was not checked: manifests against the digest they were asked by (or the digest the registry announces), blobs
// against their descriptors, the latter by the store as the bytes stream in. The name is written last, so an
// image is either pulled whole or not named at all.
//
// The registry, and whatever hosts it redirects to or names as its token server, may be hostile (a tenant names
// the image): every connection goes through the caller's egress policy (common/policed-fetch.ts), the whole pull
// has a deadline and a size cap checked against the manifest before any blob is fetched and against the bytes as
// they arrive, the host's own registry logins are used only for registries the caller lists, and no error quotes
// what a server sent beyond its status and the identifiers Lid validated.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { z } from 'zod';
import { LidError, isLidError } from '../../common/errors.js';
import { type EgressOptions, PolicedFetch, readCapped } from '../../common/policed-fetch.js';
import { formatSize } from '../../common/units.js';
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
import { formatReference, parseReference } from '../../common/image-reference.js';
import type { ImageStore, Progress } from '../store.js';
import { RegistrySession, statusLine } from './auth.js';
import { type AuthFileOptions, type Credentials, findCredentials, isDockerHub } from './credentials.js';

export interface PullOptions {
  /** Where connections may go (every hop: redirects, token servers), and the test hooks around that. */
  egress: EgressOptions;
  /** Largest total of the image's config and layer sizes (compressed), checked before and during the download. */
  maxBytes: number;
  /** The whole pull must end within this many milliseconds. */
  timeoutMs: number;
  /** Explicit credentials (--creds); otherwise the auth files, for the registries `hostCredentials` allows. */
  creds?: Credentials;
  /**
   * Registries ("host[:port]") for which the host's auth files may be read, or 'any' (the operator's own pulls).
   * Default none: an image a tenant names must not be pulled with the operator's logins.
   */
  hostCredentials?: 'any' | readonly string[];
  /** Speak http instead of https (--plain-http): for a registry on loopback. */
  plainHttp?: boolean;
  /** Where to look for auth files (tests point this at temporary ones). */
  authFiles?: AuthFileOptions;
  /** The platform to pick from a multi-arch index (default: this host's). */
  platform?: Platform;
  /** Bytes downloaded across all blobs of the image; called often, the caller decides how to show it. */
  onProgress?: Progress;
  signal?: AbortSignal;
}

const DOCKER_HUB_HOST = 'registry-1.docker.io';
const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerManifestList, MEDIA.dockerManifest].join(', ');
const MAX_MANIFEST_BYTES = 4 << 20; // manifests are small; a bigger one is a broken or hostile registry
const PARALLEL_DOWNLOADS = 3;
const MAX_REDIRECTS = 5; // registries redirect blobs once, to their storage; more is a loop or a probe

/** Pulls `reference` ("host[:port]/repo[:tag|@digest]") into the store and names it; returns the name and digest. */
export async function pullImage(
  reference: string,
  store: ImageStore,
  opts: PullOptions,
): Promise<{ name: string; manifestDigest: string }> {
  const ref = parseReference(reference);
  const target = registryTarget(ref.registry, ref.repository);
  const name = formatReference(ref);
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const http = new PolicedFetch({ ...opts.egress, maxRedirects: MAX_REDIRECTS });
  try {
    return await pullWith(http, store, target, name, ref, { ...opts, signal });
  } catch (e) {
    if (deadline.aborted && !opts.signal?.aborted) {
      throw new LidError(
        'setup_failed',
        `pulling ${name} from registry ${target.host} took longer than the ${opts.timeoutMs / 1000} s a pull may take (LID_PULL_TIMEOUT)`,
        { registry: target.host, timeoutMs: opts.timeoutMs },
      );
    }
    throw e;
  } finally {
    await http.close();
  }
}

async function pullWith(
  http: PolicedFetch,
  store: ImageStore,
  target: { host: string; repository: string },
  name: string,
  ref: ReturnType<typeof parseReference>,
  opts: PullOptions & { signal: AbortSignal },
): Promise<{ name: string; manifestDigest: string }> {
  const base = `${opts.plainHttp ? 'http' : 'https'}://${target.host}`;
  const mayUseLogins = hostCredentialsAllowed(target.host, opts.hostCredentials ?? []);
  const session = new RegistrySession({
    registry: target.host,
    creds: opts.creds ?? (mayUseLogins ? findCredentials(target.host, { ...opts.authFiles }) : undefined),
    credentialsHint: mayUseLogins
      ? 'pass --creds USER:PASS or log in with skopeo/podman/docker login'
      : `Lid pulls images for jobs without the host's registry logins unless the operator lists the registry in LID_REGISTRY_HOST_CREDENTIALS`,
    base,
    plainHttp: opts.plainHttp ?? false,
    fetch: http.fetch,
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

  const blobs = [...new Map([parsed.config, ...parsed.layers].map((b) => [b.digest, b])).values()];
  const total = blobs.reduce((sum, b) => sum + b.size, 0);
  if (total > opts.maxBytes) {
    throw new LidError(
      'invalid_spec',
      `image ${name} is ${total} bytes compressed, over the limit of ${formatSize(opts.maxBytes)} for a pulled image (LID_PULL_MAX_BYTES)`,
      { registry: repo.host, bytes: total, maxBytes: opts.maxBytes },
    );
  }
  await downloadBlobs(repo, store, blobs, opts);
  // Manifests go in last and byte for byte: their digest is what names them, and re-serialising would change it.
  if (index) await store.putBlob(index.bytes, { digest: index.digest, size: index.bytes.length });
  await store.putBlob(manifest.bytes, { digest: manifest.digest, size: manifest.bytes.length });
  const tagged = await store.tag(name, manifest.digest);
  return { name: tagged.name, manifestDigest: manifest.digest };
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
  const bytes = await readCapped(res, Math.min(size ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES), () => {
    const limit = size === undefined ? `the ${MAX_MANIFEST_BYTES}-byte limit` : `its descriptor's ${size} bytes`;
    return new LidError('invalid_image', `registry ${repo.host} sent a manifest for ${repo.name} larger than ${limit}`);
  });
  const actual = sha256(bytes);
  const announced = res.headers.get('docker-content-digest') ?? undefined;
  // A header the registry writes: used (and quoted) only when it is a well-formed digest.
  const expected = digest ?? (announced && /^sha256:[a-f0-9]{64}$/.test(announced) ? announced : undefined);
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
    `image ${name} has a manifest of type ${shown(type, MEDIA_TYPE) ?? '(none given, or not a media type)'}, which Lid does not pull: it takes OCI and Docker v2 schema 2 images`,
  );
}

// Fields of a manifest that messages may quote, each only when it has its expected shape: the registry wrote them.
const MEDIA_TYPE = /^[\w.+-]{1,64}\/[\w.+-]{1,127}$/;
const PLATFORM_PART = /^[\w.-]{1,32}$/;

function shown(value: string, shape: RegExp): string | undefined {
  return shape.test(value) ? value : undefined;
}

function platformText(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function noPlatform(name: string, want: Platform, index: Index): LidError {
  const available = index.manifests.flatMap((m) => {
    const parts = m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean) : [];
    return parts.length && parts.every((p) => PLATFORM_PART.test(p!)) ? [parts.join('/')] : [];
  });
  return new LidError(
    'not_found',
    `image ${name} has no variant for ${platformText(want)} (available: ${available.join(', ') || 'none listed'})`,
    { available },
  );
}

/**
 * Downloads the blobs the store lacks, a few at a time; the first failure cancels the others. Each blob stops at
 * its descriptor's size and all of them at maxBytes, whatever the registry sends.
 */
async function downloadBlobs(repo: Repo, store: ImageStore, blobs: Descriptor[], opts: PullOptions): Promise<void> {
  const missing = blobs.filter((b) => !store.hasBlob(b.digest));
  const total = missing.reduce((sum, b) => sum + b.size, 0);
  let done = 0;
  const report = (bytes: number) => {
    done += bytes;
    if (done > opts.maxBytes) {
      throw new LidError(
        'invalid_image',
        `registry ${repo.host} sent more than the ${opts.maxBytes} bytes ${repo.name} may have`,
      );
    }
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

// The error codes of the distribution spec: a body's code is quoted only when it is one of these.
const SPEC_ERROR_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);
const MAX_ERROR_BODY_BYTES = 64 << 10;

/**
 * A non-2xx answer as a LidError: the status, and the spec's error codes when the body gives some. The body's
 * free text is never quoted: the registry (or a host it redirected to) wrote it, and it would reach tenants and logs.
 */
async function httpError(repo: Repo, res: Response, what: string): Promise<LidError> {
  const bytes = await readCapped(res, MAX_ERROR_BODY_BYTES, () => new Error('too big')).catch(() => Buffer.alloc(0));
  let codes: string[] = [];
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { errors?: { code?: unknown }[] };
    const all = (Array.isArray(parsed.errors) ? parsed.errors : []).map((e) => e?.code);
    codes = [...new Set(all.filter((c): c is string => typeof c === 'string' && SPEC_ERROR_CODES.has(c)))];
  } catch {
    // not the spec's JSON: the status says enough
  }
  const suffix = codes.length ? ` (${codes.join(', ')})` : '';
  if (res.status === 403) {
    return new LidError(
      'invalid_spec',
      `registry ${repo.host} denied access to ${what}${suffix}: check that your credentials may pull ${repo.repository}`,
    );
  }
  const message = `registry ${repo.host} answered ${statusLine(res.status)}${suffix} for ${what}`;
  return new LidError('setup_failed', message, { registry: repo.host, status: res.status });
}

/** May the host's auth files be read for `host`? Docker Hub answers to several names, any of which may be listed. */
function hostCredentialsAllowed(host: string, allowed: 'any' | readonly string[]): boolean {
  if (allowed === 'any') return true;
  const wanted = host.toLowerCase();
  return allowed.some((h) => h.toLowerCase() === wanted || (isDockerHub(h) && isDockerHub(wanted)));
}
