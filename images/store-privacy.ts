// Keeps the image store closed to the host's other users. Layers hold whatever tenants' images hold, setuid-root
// programs included; were the store reachable, any local user could run one from LID_DATA_DIR/images/layers/... and
// be root. Two defences, each enough on its own:
//   - every directory of the store is 0700 root, and LID_DATA_DIR 0711 (others may pass through it, not list it).
//     Jobs never walk these paths: the runtime mounts layers with overlayfs as root, and overlayfs reaches the
//     lower directories with the mounter's credentials, so their ancestors can be closed. A layer directory's own
//     mode stays what its archive says: that is what the job sees as the mode of "/".
//   - no file in a layer keeps a setuid or setgid bit (unpack.ts strips them; inside a sandbox they never worked,
//     jobs run with no_new_privs). A directory's setgid bit stays: it grants nothing, it only gives new files the
//     directory's group.
// Stores made by an older Lid (0755 directories, setuid files in layers) are fixed when opened: the directory modes
// every time (a few chmods), the layers once, remembered by a marker file, since walking them costs a stat per file.
import fs from 'node:fs';
import path from 'node:path';
import { ensureDirMode, PRIVATE_DIR_MODE, privateDataDir } from '../common/private-dir.js';
import type { StoreLayout } from './store-layout.js';

/** Setuid and setgid: the bits that make an executable run as its owner or group. */
export const PRIVILEGE_BITS = 0o6000;

/** Gives the store's directories their modes and, once per store, strips privilege bits from unpacked layers. */
export function makeStorePrivate(dataDir: string, layout: StoreLayout): void {
  privateDataDir(dataDir, path.basename(layout.root));
  for (const dir of layout.privateDirs) ensureDirMode(dir, PRIVATE_DIR_MODE);
  if (fs.existsSync(layout.privateMarker)) return;
  for (const layer of fs.readdirSync(layout.layersDir, { withFileTypes: true }))
    if (layer.isDirectory()) stripPrivilegeBits(path.join(layout.layersDir, layer.name));
  fs.writeFileSync(layout.privateMarker, `layers swept of setuid/setgid bits at ${new Date().toISOString()}\n`);
}

/**
 * Clears setuid/setgid on every regular file under `root`. The walk never follows a symlink (directory entries'
 * own types decide where it goes), and each file is opened with O_NOFOLLOW and changed through its descriptor.
 * Returns how many files it changed.
 */
export function stripPrivilegeBits(root: string): number {
  let changed = 0;
  const pending = [root];
  while (pending.length) {
    const dir = pending.pop()!;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name);
      if (entry.isDirectory()) pending.push(abs);
      else if (entry.isFile() && (fs.lstatSync(abs).mode & PRIVILEGE_BITS) !== 0 && clearBits(abs)) changed++;
    }
  }
  return changed;
}

function clearBits(file: string): boolean {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (st.mode & PRIVILEGE_BITS) === 0) return false;
    fs.fchmodSync(fd, st.mode & 0o7777 & ~PRIVILEGE_BITS);
    return true;
  } finally {
    fs.closeSync(fd);
  }
}
