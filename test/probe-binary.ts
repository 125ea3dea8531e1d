// Compiles test/probes/probe.c (static) once per source version, for tests to place inside sandboxes.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const source = new URL('./probes/probe.c', import.meta.url).pathname;

/** The path of the compiled probe (compiled on first use). */
export function probeBinaryPath(): string {
  const digest = crypto.createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 16);
  const out = path.join(os.tmpdir(), `lid-probe-${digest}`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    execFileSync('cc', ['-O1', '-static', '-Wall', '-o', tmp, source], { stdio: 'pipe' });
    fs.renameSync(tmp, out);
  }
  return out;
}

export function probeBinary(): Buffer {
  return fs.readFileSync(probeBinaryPath());
}
