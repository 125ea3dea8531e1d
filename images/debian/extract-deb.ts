// Unpacks one .deb's files into a staging root, without running its maintainer scripts (nothing of the package is
// executed on the building host). dpkg-deb only decompresses the data archive (it knows every compression Debian
// uses); the entries are placed here, through StagingRoot, so that paths resolve inside the image (see
// staging-root.ts for why `dpkg-deb -x` will not do).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar, { type ExtractEvents } from 'tar-stream';
import { isLidError, LidError } from '../../common/errors.js';
import type { StagingRoot } from './staging-root.js';

type Entry = ExtractEvents['entry'][1];

async function writeEntry(root: StagingRoot, entry: Entry, deb: string): Promise<void> {
  const h = entry.header;
  const owner = { uid: h.uid, gid: h.gid };
  const mode = h.mode & 0o7777;
  switch (h.type) {
    case 'directory':
      root.directory(h.name, mode, owner);
      break;
    case 'symlink':
      root.symlink(h.name, h.linkname, owner);
      break;
    case 'link':
      root.hardlink(h.name, h.linkname, owner);
      break;
    case 'file':
    case 'contiguous-file': {
      const { rel, fd } = root.createFile(h.name, mode, owner);
      await pipeline(entry, fs.createWriteStream(root.hostPath(rel), { fd })); // closes fd
      return; // the body was consumed
    }
    default:
      // Debian packages carry no device nodes or fifos (dpkg policy): one that does is not what it claims to be.
      throw new LidError('invalid_image', `${path.basename(deb)}: ${h.name} is a ${h.type}, which Lid does not unpack`);
  }
  entry.resume();
}

/** Extracts the data archive of `deb` into `root`. */
export async function extractDeb(deb: string, root: StagingRoot): Promise<void> {
  const child = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const extract = tar.extract();
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT'
          ? new LidError('unsupported', 'dpkg-deb was not found: building images from recipes needs Debian tools')
          : new LidError('setup_failed', `cannot run dpkg-deb: ${e.message}`);
      extract.destroy(why);
      reject(why);
    });
    child.on('close', (code) => {
      if (code === 0) return resolve();
      const why = `dpkg-deb --fsys-tarfile ${path.basename(deb)} failed (exit ${code}): ${stderr.trim()}`;
      reject(new LidError('setup_failed', why));
    });
  });
  exited.catch(() => {}); // awaited below; this keeps an early failure from counting as unhandled meanwhile
  child.stdout.pipe(extract);
  try {
    for await (const entry of extract) await writeEntry(root, entry, deb);
  } catch (e) {
    if (isLidError(e)) {
      child.kill(); // our refusal: dpkg-deb need not finish
      await exited.catch(() => {});
      throw e;
    }
    // A parse error of a truncated stream: dpkg-deb's own failure, if it failed, says more.
    await exited;
    throw new LidError('setup_failed', `${path.basename(deb)}: ${(e as Error).message}`);
  }
  await exited;
}
