#!/usr/bin/env node
// Launcher for the `lid` command: runs the build in dist/ (made by `npm ci` through the prepare script), or the
// TypeScript sources through tsx when no build is there (a fresh clone before `npm ci` finished, or development).
import fs from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
let mod;
if (fs.existsSync(built)) {
  mod = await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(new URL('../cli/main.ts', import.meta.url).href);
}
await mod.main(process.argv);
