// How tests start a helper script in a child process: from the compiled build in dist/ when it is current (as
// `lid` runs in production), otherwise from the TypeScript source through tsx. Seen under the v2 VM's emulated CPU:
// about one child in fifteen started through tsx's loader died of SIGSEGV while starting, and none of 56 started
// from dist/, so the VM runs stay deterministic by using the build.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCE_DIRS = ['common', 'runtime', 'images', 'worker', 'gateway', 'cli', 'test'];

function newestSource(): number {
  let newest = 0;
  for (const dir of SOURCE_DIRS) {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts')) {
        newest = Math.max(newest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
      }
    }
  }
  return newest;
}

/** Arguments for `node` that run the given test/*.ts script (absolute path). */
export function nodeScriptArgs(tsFile: string): string[] {
  const built = path.join(root, 'dist', path.relative(root, tsFile)).replace(/\.ts$/, '.js');
  const stamp = path.join(root, 'dist', '.built');
  if (fs.existsSync(built) && fs.existsSync(stamp) && fs.statSync(stamp).mtimeMs >= newestSource()) return [built];
  return ['--import', 'tsx', tsFile];
}
