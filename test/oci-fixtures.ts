// Small OCI images for tests, written the way image tools write them: layer tars (tar-stream), gzip, config,
// manifest and index.json in an OCI image layout directory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export type LayerEntry =
  | { type: 'file'; name: string; content: string | Buffer; mode?: number; uid?: number }
  | { type: 'directory'; name: string; mode?: number }
  | { type: 'symlink'; name: string; linkname: string };

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

// Every entry gets this mtime: tar-stream's default is "now", so the same entries packed a second apart gave two
// digests, and tests that share a layer between images failed when a second boundary fell between them.
const MTIME = new Date('2026-01-01T00:00:00Z');

export async function layerTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const e of entries) {
    if (e.type === 'file')
      pack.entry({ name: e.name, mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: 0, mtime: MTIME }, e.content);
    else if (e.type === 'directory')
      pack.entry({ name: e.name, type: 'directory', mode: e.mode ?? 0o755, mtime: MTIME });
    else pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname, mtime: MTIME });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export interface FixtureImage {
  manifestDigest: string;
  layerDigests: string[];
}

/** Writes an OCI layout with one image; layers are bottom first. `refName` goes in the index annotation. */
export async function writeOciLayout(
  dir: string,
  opts: { layers: LayerEntry[][]; config?: Record<string, unknown>; refName?: string; gzip?: boolean },
): Promise<FixtureImage> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha(b);
    fs.writeFileSync(path.join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const layers = [];
  const diffIds = [];
  for (const entries of opts.layers) {
    const raw = await layerTar(entries);
    diffIds.push(sha(raw));
    const gz = opts.gzip ?? true;
    layers.push({
      mediaType: gz ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
      ...put(gz ? gzipSync(raw) : raw),
    });
  }
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: opts.config ?? {},
        rootfs: { type: 'layers', diff_ids: diffIds },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers,
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const annotations = opts.refName ? { 'org.opencontainers.image.ref.name': opts.refName } : undefined;
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations }],
    }),
  );
  return { manifestDigest: manifest.digest, layerDigests: layers.map((l) => l.digest) };
}

/** A busybox root as one layer: the static binary plus the applet links the tests use. */
export function busyboxLayer(extra: LayerEntry[] = []): LayerEntry[] {
  const applets = ['sh', 'ls', 'cat', 'echo', 'id', 'sleep', 'true', 'test'];
  return [
    { type: 'directory', name: 'bin' },
    { type: 'file', name: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', name: `bin/${a}`, linkname: 'busybox' })),
    { type: 'directory', name: 'etc' },
    { type: 'file', name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n' },
    { type: 'file', name: 'etc/group', content: 'root:x:0:\napp:x:2345:\n' },
    ...extra,
  ];
}
