// A store holding many small images, written the way the store writes them (blobs by digest, a layer directory per
// layer blob, names in refs.json), without tar or unpacking: for GC at scale, where only which blob and layer
// belongs to which name matters. Images come in families sharing a base layer, as real images share their distro.
import fs from 'node:fs';
import path from 'node:path';
import { ImageStore } from '../images/store.js';

export interface SyntheticImage {
  name: string;
  manifestDigest: string;
  /** config, base layer, own layer */
  blobs: string[];
  /** last use, ms since the epoch (distinct per image: image i was used at i seconds) */
  lastUsed: number;
}

async function put(store: ImageStore, value: unknown): Promise<string> {
  const { digest } = await store.putBlob(Buffer.from(JSON.stringify(value)));
  return digest;
}

/** Writes `count` images in `families` families into a fresh store under `dataDir`. */
export async function syntheticStore(
  dataDir: string,
  opts: { count: number; families: number; layerBytes?: number },
): Promise<{ store: ImageStore; images: SyntheticImage[] }> {
  const store = ImageStore.open(dataDir);
  const layerBytes = opts.layerBytes ?? 8192;
  const layer = async (label: string) => {
    const { digest, size } = await store.putBlob(Buffer.concat([Buffer.from(label), Buffer.alloc(layerBytes)]));
    const dir = store.layout.layer(digest);
    fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'etc', 'layer'), Buffer.alloc(layerBytes, 1));
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size };
  };
  const bases = [];
  for (let f = 0; f < opts.families; f++) bases.push(await layer(`base ${f}`));
  const images: SyntheticImage[] = [];
  const refs: Record<string, string> = {};
  const access: Record<string, number> = {};
  for (let i = 0; i < opts.count; i++) {
    const base = bases[i % opts.families]!;
    const own = await layer(`image ${i}`);
    const configBytes = { rootfs: { type: 'layers', diff_ids: [base.digest, own.digest] }, config: { Cmd: [`${i}`] } };
    const config = await store.putBlob(Buffer.from(JSON.stringify(configBytes)));
    const manifestDigest = await put(store, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [base, own],
    });
    const name = `synthetic/app-${i}:1`;
    refs[name] = manifestDigest;
    access[name] = 1_000 * (i + 1);
    images.push({ name, manifestDigest, blobs: [config.digest, base.digest, own.digest], lastUsed: access[name] });
  }
  await store.updateRefs((r) => Object.assign(r, refs));
  fs.writeFileSync(store.layout.accessFile, JSON.stringify(access));
  return { store, images };
}
