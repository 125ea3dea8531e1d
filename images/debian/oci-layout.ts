// The OCI image layout (image-spec image-layout.md) a recipe build produces: `oci-layout`, `index.json`, and the
// config, manifest and layer under blobs/sha256/. The JSON is written compactly with keys in a fixed order and no
// timestamps, so that the manifest digest depends only on the recipe and the package contents.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { LidError } from '../../common/errors.js';
import type { LayerBlob } from './layer-tar.js';
import type { Recipe } from './recipe.js';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const PACKAGES_ANNOTATION = 'dev.lid.packages';
const LAYER_TMP = 'layer.tmp'; // under blobs/, beside sha256/, until its digest is known

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Platform {
  architecture: string;
  os: 'linux';
  variant?: string;
}

/** Debian architecture names in OCI (Go) terms. */
const PLATFORMS: Record<string, Omit<Platform, 'os'>> = {
  amd64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  armhf: { architecture: 'arm', variant: 'v7' },
  i386: { architecture: '386' },
  ppc64el: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

export function platformOf(debianArch: string): Platform {
  const p = PLATFORMS[debianArch];
  if (!p) throw new LidError('unsupported', `no OCI platform is known for the Debian architecture ${debianArch}`);
  return { architecture: p.architecture, os: 'linux', ...(p.variant ? { variant: p.variant } : {}) };
}

export interface ImageContents {
  recipe: Recipe;
  platform: Platform;
  layer: LayerBlob & { mediaType: string };
  packages: { name: string; version: string }[];
}

/** The image config: the recipe's runtime config, in the order the OCI spec lists its fields. */
export function imageConfig(c: ImageContents): object {
  const { Env, Entrypoint, Cmd, WorkingDir, User } = c.recipe.config;
  const config = Object.fromEntries(
    Object.entries({ User, Env, Entrypoint, Cmd, WorkingDir }).filter(([, v]) => v !== undefined),
  );
  return {
    architecture: c.platform.architecture,
    os: c.platform.os,
    ...(c.platform.variant ? { variant: c.platform.variant } : {}),
    config,
    rootfs: { type: 'layers', diff_ids: [c.layer.diffId] },
    history: [{ created_by: `lid: Debian packages of recipe ${c.recipe.name}`, comment: c.recipe.description }],
  };
}

/** name=version of every package, sorted by name, space separated (an apt-get install line pinning them all). */
export function packagesAnnotation(packages: { name: string; version: string }[]): string {
  return packages
    .map((p) => `${p.name}=${p.version}`)
    .sort()
    .join(' ');
}

export function imageManifest(c: ImageContents, config: Descriptor): object {
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config,
    layers: [{ mediaType: c.layer.mediaType, digest: c.layer.digest, size: c.layer.size }],
    annotations: {
      'org.opencontainers.image.title': c.recipe.name,
      'org.opencontainers.image.description': c.recipe.description,
      [PACKAGES_ANNOTATION]: packagesAnnotation(c.packages),
    },
  };
}

function blobPath(layoutDir: string, digest: string): string {
  return path.join(layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

function writeJsonBlob(layoutDir: string, mediaType: string, value: object): Descriptor {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
  fs.writeFileSync(blobPath(layoutDir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Starts a layout in `layoutDir`; returns where to write the layer blob (writeOciLayout names it by digest). */
export function prepareLayout(layoutDir: string): string {
  fs.mkdirSync(path.join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  return path.join(layoutDir, 'blobs', LAYER_TMP);
}

/** Completes the layout around the layer written where prepareLayout() said; returns the manifest's descriptor. */
export function writeOciLayout(layoutDir: string, c: ImageContents): Descriptor {
  fs.renameSync(path.join(layoutDir, 'blobs', LAYER_TMP), blobPath(layoutDir, c.layer.digest));
  const config = writeJsonBlob(layoutDir, MEDIA_TYPES.config, imageConfig(c));
  const manifest = writeJsonBlob(layoutDir, MEDIA_TYPES.manifest, imageManifest(c, config));
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [
      {
        ...manifest,
        platform: c.platform,
        annotations: { 'org.opencontainers.image.ref.name': `${c.recipe.name}:latest` },
      },
    ],
  };
  fs.writeFileSync(path.join(layoutDir, 'index.json'), JSON.stringify(index));
  fs.writeFileSync(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return manifest;
}
