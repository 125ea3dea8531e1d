// Finds (and, the first time, compiles) lid-init, the sandbox's first process (see lid-init.c for why it exists).
// It is built statically so that nothing from the host's library directories is needed once the root has moved.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LidError } from '../../common/errors.js';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the Lid package root');
    dir = up;
  }
  return dir;
}

export function initSourcePath(): string {
  return path.join(packageRoot(), 'runtime', 'init', 'lid-init.c');
}

export function initBinaryPath(): string {
  return path.join(packageRoot(), 'build', 'lid-init');
}

/** Returns the path of an up-to-date lid-init, compiling it when it is missing or older than its source. */
export function ensureInitBinary(): string {
  const source = initSourcePath();
  const binary = initBinaryPath();
  if (fs.existsSync(binary) && fs.statSync(binary).mtimeMs >= fs.statSync(source).mtimeMs) return binary;
  fs.mkdirSync(path.dirname(binary), { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const compiler = 'cc';
  try {
    execFileSync(compiler, ['-O2', '-static', '-Wall', '-Werror', '-o', tmp, source], { stdio: 'pipe' });
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    const why = err.code === 'ENOENT' ? `no C compiler ("${compiler}") was found` : String(err.stderr ?? err.message);
    throw new LidError(
      'unsupported',
      `cannot build the sandbox init (${source}): ${why}. Install one with: apt-get install gcc libc6-dev`,
    );
  }
  fs.renameSync(tmp, binary); // atomic: a concurrent start sees either no binary or a whole one
  return binary;
}
