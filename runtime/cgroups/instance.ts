// This runtime instance's cgroup directory is named after its process (common/process-instance.ts), so that a
// later start can tell a crashed instance's leftovers from a live neighbour's (a CLI run beside a worker, two test
// files) and sweep only the former. Also the small synchronous file helpers both drivers share.
import fs from 'node:fs';
import type { CgroupWrite } from './limits.js';
import { isInstanceDead } from '../../common/process-instance.js';

export { currentInstanceName } from '../../common/process-instance.js';

export function writeFile(file: string, value: string): void {
  fs.writeFileSync(file, value);
}

/**
 * The part of a job cgroup both drivers share: its directories made and its limits written (or everything undone on
 * a failure), attach by writing cgroup.procs in each, destroy by killing and removing each, at most once. The
 * drivers add how usage is read, which is where v1 and v2 really differ.
 */
export function makeJobDirs(
  dirs: string[],
  writes: CgroupWrite[],
  dirOf: (controller: CgroupWrite['controller']) => string,
  killFile?: string,
): { attach(pid: number): void; destroy(): void } {
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const dir of dirs) killAndRemove(dir, killFile);
  };
  try {
    for (const dir of dirs) fs.mkdirSync(dir);
    writeLimits(writes, dirOf);
  } catch (e) {
    destroy();
    throw e;
  }
  return {
    attach(pid) {
      for (const dir of dirs) writeFile(`${dir}/cgroup.procs`, String(pid));
    },
    destroy,
  };
}

/** Writes limit files in order (limits.ts), skipping optional files this kernel lacks; `dirOf` maps a controller. */
export function writeLimits(writes: CgroupWrite[], dirOf: (controller: CgroupWrite['controller']) => string): void {
  for (const w of writes) {
    const file = `${dirOf(w.controller)}/${w.file}`;
    if (w.optional && !fs.existsSync(file)) continue;
    writeFile(file, w.value);
  }
}

export function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export function listDirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? [d.name] : []));
  } catch {
    return [];
  }
}

/** Kills every process listed in a cgroup, then removes it; retries while the kernel finishes reaping. */
export function killAndRemove(dir: string, killFile?: string): void {
  for (let attempt = 0; attempt < 2000; attempt++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw e;
    }
    if (killFile && fs.existsSync(`${dir}/${killFile}`)) {
      try {
        writeFile(`${dir}/${killFile}`, '1');
      } catch {
        /* fall back to signalling each process */
      }
    }
    for (const pid of (readText(`${dir}/cgroup.procs`) ?? '').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, attempt < 20 ? 1 : 5);
  }
  throw new Error(`cgroup ${dir} still busy after repeated kills`);
}

/** Removes the job cgroups of instances whose process died, then their instance directories. */
export function sweepDeadInstances(lidDirs: string[], killFile?: string): string[] {
  const swept: string[] = [];
  for (const lidDir of lidDirs) {
    for (const instance of listDirs(lidDir)) {
      if (!isInstanceDead(instance)) continue;
      const instanceDir = `${lidDir}/${instance}`;
      for (const job of listDirs(instanceDir)) killAndRemove(`${instanceDir}/${job}`, killFile);
      killAndRemove(instanceDir, killFile);
      swept.push(instanceDir);
    }
  }
  return swept;
}

/** Removes Lid's shared parent directories when no instance is left in them (another may still be running). */
export function removeIfEmpty(dirs: string[]): void {
  for (const dir of dirs) {
    try {
      fs.rmdirSync(dir);
    } catch {
      /* in use by another instance, or already gone */
    }
  }
}
