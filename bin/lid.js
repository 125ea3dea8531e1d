#!/usr/bin/env node
// Launcher for the `lid` command. It runs the build in dist/ (made by `npm ci` through the prepare script) when that
// build is at least as new as every TypeScript source, and otherwise the sources themselves through tsx, so that an
// edited checkout never runs stale code.
import fs from 'node:fs';

const root = new URL('..', import.meta.url);
const stamp = new URL('dist/.built', root);
const SOURCE_DIRS = ['common', 'runtime', 'images', 'worker', 'gateway', 'cli'];

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) {
      newest = Math.max(newest, fs.statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
    }
  }
  return newest;
}

function buildIsFresh() {
  if (!fs.existsSync(stamp)) return false;
  const built = fs.statSync(stamp).mtimeMs;
  return SOURCE_DIRS.every((d) => !fs.existsSync(new URL(d, root)) || newestSource(new URL(d, root).pathname) <= built);
}

let mod;
if (buildIsFresh()) {
  mod = await import(new URL('dist/cli/main.js', root).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(new URL('cli/main.ts', root).href);
}
await mod.main(process.argv);
