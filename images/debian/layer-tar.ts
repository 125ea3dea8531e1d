// Writes a staging root as one gzipped OCI layer, byte-for-byte reproducible: the same files give the same digest.
// What varies between two builds of the same packages is left out or fixed: entries are in path order (children
// after their directory, names sorted), every mtime is LAYER_MTIME, owners come from the packages (not from who
// built), no uname/gname/atime/ctime is written, and gzip runs at a fixed level with no name or time in its header
// (Node's zlib writes mtime 0). File contents stream from disk; the layer is never held in memory.
// Files lose their setuid and setgid bits here, as at unpack (images/store-privacy.ts says why): packages ship
// setuid programs (mount, su, passwd), which cannot work in a sandbox with no_new_privs anyway.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar, { type Header, type Pack } from 'tar-stream';
import { LidError } from '../../common/errors.js';
import { PRIVILEGE_BITS } from '../store-privacy.js';
import type { Progress } from './resolve.js';
import type { StagingRoot } from './staging-root.js';

/** The mtime of every entry (SOURCE_DATE_EPOCH = 0): package dates would tell nothing a job needs. */
export const LAYER_MTIME = new Date(0);
/**
 * Fixed, since another level gives other bytes. zlib's default: on the node image (114 MB of tar) level 9 took 7.9 s
 * against 2.7 s and saved 0.3%.
 */
export const GZIP_LEVEL = 6;

export interface LayerBlob {
  /** sha256 of the gzipped blob: the layer's digest in the manifest. */
  digest: string;
  /** sha256 of the uncompressed tar: the layer's diff_id in the image config. */
  diffId: string;
  /** Bytes of the gzipped blob. */
  size: number;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
  entries: number;
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Every path under `dir`, relative, each directory before what it holds, siblings sorted. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort(byCodeUnit)) {
      const child = rel ? `${rel}/${name}` : name;
      out.push(child);
      if (fs.lstatSync(path.join(dir, child)).isDirectory()) walk(child);
    }
  };
  walk('');
  return out;
}

function addEntry(pack: Pack, header: Partial<Header> & Pick<Header, 'name'>, content?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (content === undefined) return; // entries without a body finish by themselves
    const input = fs.createReadStream(content);
    input.on('error', (e) => sink.destroy(e));
    input.pipe(sink);
  });
}

async function addTree(pack: Pack, root: StagingRoot, onProgress: Progress): Promise<number> {
  const paths = listTree(root.dir);
  const firstLink = new Map<string, string>(); // inode -> the first path of a hard-link group, in layer order
  onProgress('writing layer', 0, paths.length);
  for (const [i, rel] of paths.entries()) {
    const host = path.join(root.dir, rel);
    const st = fs.lstatSync(host);
    const { uid, gid } = root.owners.get(rel) ?? { uid: 0, gid: 0 };
    const mode = st.mode & (st.isDirectory() ? 0o7777 : 0o7777 & ~PRIVILEGE_BITS);
    const base = { name: rel, mode, uid, gid, mtime: LAYER_MTIME };
    if (st.isDirectory()) {
      await addEntry(pack, { ...base, name: `${rel}/`, type: 'directory' });
    } else if (st.isSymbolicLink()) {
      await addEntry(pack, { ...base, type: 'symlink', linkname: fs.readlinkSync(host) });
    } else if (st.isFile()) {
      const inode = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? firstLink.get(inode) : undefined;
      if (first !== undefined) {
        await addEntry(pack, { ...base, type: 'link', linkname: first });
      } else {
        if (st.nlink > 1) firstLink.set(inode, rel);
        await addEntry(pack, { ...base, type: 'file', size: st.size }, host);
      }
    } else {
      throw new LidError('internal', `the staging root holds /${rel}, which is neither file, directory nor symlink`);
    }
    if ((i + 1) % 500 === 0 || i + 1 === paths.length) onProgress('writing layer', i + 1, paths.length);
  }
  return paths.length;
}

/** A pipeline stage that hashes and counts the bytes passing through (tar-stream types its chunks as unknown). */
function measure(hash: crypto.Hash, count: { bytes: number }) {
  return async function* (source: AsyncIterable<unknown>) {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      hash.update(chunk);
      count.bytes += chunk.length;
      yield chunk;
    }
  };
}

/** Writes the layer of `root` to `file` (which must not exist) and returns its digests and sizes. */
export async function writeLayer(root: StagingRoot, file: string, onProgress: Progress = () => {}): Promise<LayerBlob> {
  const tarHash = crypto.createHash('sha256');
  const blobHash = crypto.createHash('sha256');
  const tarCount = { bytes: 0 };
  const blobCount = { bytes: 0 };
  const pack = tar.pack();
  const written = pipeline(
    pack,
    measure(tarHash, tarCount),
    zlib.createGzip({ level: GZIP_LEVEL }),
    measure(blobHash, blobCount),
    fs.createWriteStream(file, { flags: 'wx' }),
  );
  const produced = addTree(pack, root, onProgress).then(
    (entries) => {
      pack.finalize();
      return entries;
    },
    (e: unknown) => {
      pack.destroy(e as Error); // ends the pipeline too
      throw e;
    },
  );
  const [, entries] = await Promise.all([written, produced]);
  return {
    digest: `sha256:${blobHash.digest('hex')}`,
    diffId: `sha256:${tarHash.digest('hex')}`,
    size: blobCount.bytes,
    tarSize: tarCount.bytes,
    entries,
  };
}
