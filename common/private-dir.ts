// Directories under LID_DATA_DIR with the modes the security model gives them, whatever the umask: LID_DATA_DIR
// itself 0711 (others may pass through it, as the embedded Redis's own user must to reach redis/, but not list or
// read it), and what is directly under it 0700 (images/, secrets/). mkdir's mode is filtered by the umask, so each
// directory is chmodded after it is made, and also when it already existed with looser bits (an older Lid made
// them 0755).
import fs from 'node:fs';
import path from 'node:path';

export const DATA_DIR_MODE = 0o711;
export const PRIVATE_DIR_MODE = 0o700;

/** Makes `dir` (and missing parents, left as the umask makes them) and gives it exactly `mode`. */
export function ensureDirMode(dir: string, mode: number): string {
  fs.mkdirSync(dir, { recursive: true, mode });
  if ((fs.statSync(dir).mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
  return dir;
}

/** LID_DATA_DIR at 0711 and its child `name` at 0700; returns the child's path. */
export function privateDataDir(dataDir: string, name: string): string {
  ensureDirMode(path.resolve(dataDir), DATA_DIR_MODE);
  return ensureDirMode(path.resolve(dataDir, name), PRIVATE_DIR_MODE);
}
