// A registry written for the egress tests: it serves one small image over the distribution API from an address
// on loopback, and misbehaves on request -- redirects blob downloads to another host, demands Bearer tokens from a
// realm anywhere or Basic credentials, lies about a layer's size, trickles bytes. Every body it writes that is not
// image content (errors, challenges, redirects) carries MARKER, so a test can assert that no error quotes it.
// Debian's docker-registry cannot misbehave, hence this; registry.test.ts covers the well-behaved kind with it.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { type LayerEntry, layerTar } from './oci-fixtures.js';

export const MARKER = 'LID-HOSTILE-BODY-7f3a9c';

export interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface TestImage {
  manifest: Blob;
  config: Blob;
  layer: Blob;
}

/** What one server saw: method, path and the Authorization header, in order. */
export interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

export interface TestServer {
  /** host:port */
  host: string;
  seen: Seen[];
  /** TCP connections accepted, including ones that never sent a request. */
  connections: number;
  close(): Promise<void>;
}

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;
const blob = (bytes: Buffer): Blob => ({ digest: sha(bytes), size: bytes.length, bytes });

/** A one-layer image: a file (or the entries given) in a gzipped tar, its config and an OCI manifest. */
export async function testImage(
  entries: LayerEntry[] = [{ type: 'file', name: 'hello.txt', content: 'hello from a hostile registry\n' }],
): Promise<TestImage> {
  const tar = await layerTar(entries);
  const layer = blob(gzipSync(tar));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [sha(tar)] },
      }),
    ),
  );
  const manifest = manifestFor(config, layer, layer.size);
  return { manifest, config, layer };
}

/** The image's manifest, announcing `layerSize` for its layer (a lie when it differs from the layer's). */
export function manifestFor(config: Blob, layer: Blob, layerSize: number): Blob {
  return blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layerSize }],
      }),
    ),
  );
}

/** An HTTP server on `address` (and `port`, default any) that records what it sees. */
export async function serve(address: string, handler: http.RequestListener, port = 0): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    handler(req, res);
  });
  const state = { connections: 0 };
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(port, address, resolve));
  let closing: Promise<void> | undefined;
  return {
    host: `${address}:${(server.address() as AddressInfo).port}`,
    seen,
    get connections() {
      return state.connections;
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      })),
  };
}

export interface HostileRegistryOptions {
  /** Loopback address to listen on (default 127.0.0.1). */
  address?: string;
  /** Answer blob GETs with a 307 to `${redirectBlobsTo}/blobs/<digest>` instead of the bytes. */
  redirectBlobsTo?: string;
  /** Demand a Bearer token from this realm URL; the realm's server must hand out TOKEN. */
  tokenRealm?: string;
  /** Demand these Basic credentials. */
  basic?: { username: string; password: string };
  /** The layer size the manifest announces (default: the real one). */
  announcedLayerSize?: number;
  /** Send blob bodies one byte per this many milliseconds. */
  trickleMs?: number;
  /** Answer every manifest request with this status and a MARKER body. */
  manifestStatus?: number;
}

export const TOKEN = 'hostile-registry-token';

/** The registry: /v2/test/app's manifests (tag "v1" or digest) and blobs, as the options make it behave. */
export function startHostileRegistry(image: TestImage, opts: HostileRegistryOptions = {}): Promise<TestServer> {
  const manifest =
    opts.announcedLayerSize === undefined
      ? image.manifest
      : manifestFor(image.config, image.layer, opts.announcedLayerSize);
  const blobs = new Map([image.config, image.layer].map((b) => [b.digest, b]));
  const marker = (res: http.ServerResponse, status: number, headers: Record<string, string> = {}) =>
    res
      .writeHead(status, { 'content-type': 'application/json', ...headers })
      .end(JSON.stringify({ errors: [{ code: 'DENIED', message: MARKER, detail: MARKER }], note: MARKER }));
  return serve(opts.address ?? '127.0.0.1', (req, res) => {
    const url = req.url ?? '';
    if (opts.tokenRealm && req.headers.authorization !== `Bearer ${TOKEN}`) {
      const challenge = `Bearer realm="${opts.tokenRealm}",service="hostile",scope="repository:test/app:pull"`;
      return marker(res, 401, { 'www-authenticate': challenge });
    }
    if (opts.basic) {
      const expected = `Basic ${Buffer.from(`${opts.basic.username}:${opts.basic.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return marker(res, 401, { 'www-authenticate': 'Basic realm="x"' });
    }
    const manifestMatch = /^\/v2\/test\/app\/manifests\/(.+)$/.exec(url);
    if (manifestMatch) {
      if (opts.manifestStatus) return marker(res, opts.manifestStatus);
      if (manifestMatch[1] !== 'v1' && manifestMatch[1] !== manifest.digest) return marker(res, 404);
      return res
        .writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'docker-content-digest': manifest.digest,
          'content-length': String(manifest.size),
        })
        .end(manifest.bytes);
    }
    const blobMatch = /^\/v2\/test\/app\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url);
    const found = blobMatch ? blobs.get(blobMatch[1]!) : undefined;
    if (!found) return marker(res, 404);
    if (opts.redirectBlobsTo) return marker(res, 307, { location: `${opts.redirectBlobsTo}/blobs/${found.digest}` });
    if (!opts.trickleMs) return res.writeHead(200, { 'content-length': String(found.size) }).end(found.bytes);
    res.writeHead(200, { 'content-length': String(found.size) });
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed || i >= found.size) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(found.bytes.subarray(i, ++i));
    }, opts.trickleMs);
    res.on('close', () => clearInterval(timer));
  });
}

/** Serves the image's blobs by digest under /blobs/ (where a registry's redirect sends Lid). */
export function startBlobServer(image: TestImage, address: string): Promise<TestServer> {
  const blobs = new Map([image.config, image.layer].map((b) => [b.digest, b]));
  return serve(address, (req, res) => {
    const found = blobs.get((req.url ?? '').replace(/^\/blobs\//, ''));
    if (!found) return res.writeHead(404).end(MARKER);
    res.writeHead(200, { 'content-length': String(found.size) }).end(found.bytes);
  });
}

/** A token server handing out TOKEN to anyone. */
export function startTokenServer(address: string): Promise<TestServer> {
  return serve(address, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
  });
}
