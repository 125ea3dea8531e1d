// cgroup v2 driver: one unified tree, <base>/lid/<instance>/<job>, controllers enabled down the path. A cgroup with
// controllers enabled for its children may not hold processes itself (the root excepted): when the service sits in
// the base it wants to delegate from, it moves itself into the leaf <base>/lid-service first, as a systemd unit with
// Delegate=yes would.
import fs from 'node:fs';
import { LidError } from '../../common/errors.js';
import type { CgroupDriver, CgroupLayout, CgroupLimits, CgroupUsage, JobCgroup } from './driver.js';
import type { CgroupMount } from './hierarchy.js';
import { killAndRemove, makeJobDirs, readText, removeIfEmpty, sweepDeadInstances, writeFile } from './instance.js';
import { parseKeyValues, v2LimitWrites } from './limits.js';

const NEEDED = ['memory', 'pids', 'cpu'];

function enableControllers(dir: string): void {
  const available = (readText(`${dir}/cgroup.controllers`) ?? '').trim().split(/\s+/);
  const missing = NEEDED.filter((c) => !available.includes(c));
  if (missing.length) {
    throw new LidError(
      'unsupported',
      `cgroup ${dir} does not offer the ${missing.join(', ')} controller(s); delegate them to Lid or set LID_CGROUP_PARENT`,
    );
  }
  writeFile(`${dir}/cgroup.subtree_control`, NEEDED.map((c) => `+${c}`).join(' '));
}

function enableAtBase(base: string, own: string, mountPoint: string): void {
  try {
    enableControllers(base);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || `${mountPoint}${own === '/' ? '' : own}` !== base) throw e;
  }
  // The base holds processes: ours, if we started there. Move this process into a leaf and try again.
  const leaf = `${base}/lid-service`;
  fs.mkdirSync(leaf, { recursive: true });
  writeFile(`${leaf}/cgroup.procs`, String(process.pid));
  try {
    enableControllers(base);
  } catch (e) {
    throw new LidError(
      'unsupported',
      `cannot enable cgroup controllers in ${base} (other processes live there: ${(e as Error).message}); set LID_CGROUP_PARENT to a cgroup delegated to Lid`,
    );
  }
}

export function createV2Driver(opts: {
  mount: CgroupMount;
  own: Map<string, string>;
  parent?: string;
  instance: string;
}): CgroupDriver {
  const own = opts.own.get('') ?? '/';
  const within = opts.parent ?? own;
  const base = `${opts.mount.mountPoint}${within === '/' ? '' : within}`;
  fs.mkdirSync(base, { recursive: true });
  enableAtBase(base, own, opts.mount.mountPoint);
  const lidDir = `${base}/lid`;
  fs.mkdirSync(lidDir, { recursive: true });
  enableControllers(lidDir);
  sweepDeadInstances([lidDir], 'cgroup.kill');
  const instanceDir = `${lidDir}/${opts.instance}`;
  fs.mkdirSync(instanceDir, { recursive: true });
  enableControllers(instanceDir);
  return v2Driver({ version: 2, dir: instanceDir }, () => {
    for (const job of fs.existsSync(instanceDir) ? fs.readdirSync(instanceDir, { withFileTypes: true }) : []) {
      if (job.isDirectory()) killAndRemove(`${instanceDir}/${job.name}`, 'cgroup.kill');
    }
    killAndRemove(instanceDir, 'cgroup.kill');
    removeIfEmpty([lidDir]);
  });
}

/** Job cgroups under a layout already set up (by createV2Driver, on another thread); `close` is the owner's. */
export function v2Driver(layout: Extract<CgroupLayout, { version: 2 }>, close: () => void = () => {}): CgroupDriver {
  const instanceDir = layout.dir;

  function create(name: string, limits: CgroupLimits): JobCgroup {
    const dir = `${instanceDir}/${name}`;
    const job = makeJobDirs([dir], v2LimitWrites(limits), () => dir, 'cgroup.kill');
    return {
      name,
      attach: job.attach,
      destroy: job.destroy,
      usage(): CgroupUsage {
        const cpu = parseKeyValues(readText(`${dir}/cpu.stat`) ?? '');
        const pidsPeak = readText(`${dir}/pids.peak`);
        return {
          cpuUserMs: (cpu.get('user_usec') ?? 0) / 1000,
          cpuSystemMs: (cpu.get('system_usec') ?? 0) / 1000,
          memoryPeakBytes: Number((readText(`${dir}/memory.peak`) ?? '0').trim()) || 0,
          pidsPeak: pidsPeak === null ? null : Number(pidsPeak.trim()),
          oomKills: parseKeyValues(readText(`${dir}/memory.events`) ?? '').get('oom_kill') ?? 0,
        };
      },
    };
  }

  return {
    version: 2,
    layout,
    instanceDirs: [instanceDir],
    create,
    close,
  };
}
