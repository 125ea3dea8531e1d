// cgroup v1 driver: one directory per hierarchy that carries memory, pids, cpu or cpuacct (they may be co-mounted).
// On the development machines the service starts inside a memory cgroup it does not own: Lid's tree goes under the
// service's own cgroup in each hierarchy (or LID_CGROUP_PARENT), and nothing outside that tree is ever touched.
import fs from 'node:fs';
import { LidError } from '../../common/errors.js';
import type { CgroupDriver, CgroupLayout, CgroupLimits, CgroupUsage, JobCgroup } from './driver.js';
import type { CgroupMount } from './hierarchy.js';
import { killAndRemove, makeJobDirs, readText, removeIfEmpty, sweepDeadInstances } from './instance.js';
import { parseKeyValues, v1LimitWrites } from './limits.js';

const NEEDED = ['memory', 'pids', 'cpu', 'cpuacct'] as const;
type Controller = (typeof NEEDED)[number];

export function createV1Driver(opts: {
  mounts: CgroupMount[];
  own: Map<string, string>;
  parent?: string;
  instance: string;
}): CgroupDriver {
  const base = new Map<Controller, string>(); // controller -> <mount>/<service cgroup>/lid
  for (const controller of NEEDED) {
    const mount = opts.mounts.find((m) => m.version === 1 && m.controllers.includes(controller));
    if (!mount)
      throw new LidError(
        'unsupported',
        `cgroup v1 controller "${controller}" is not mounted; Lid needs memory, pids, cpu and cpuacct`,
      );
    const within = opts.parent ?? opts.own.get(controller) ?? '/';
    base.set(controller, `${mount.mountPoint}${within === '/' ? '' : within}/lid`);
  }
  const lidDirs = [...new Set(base.values())];
  for (const dir of lidDirs) fs.mkdirSync(dir, { recursive: true });
  sweepDeadInstances(lidDirs);
  const instanceDirs = lidDirs.map((d) => `${d}/${opts.instance}`);
  for (const dir of instanceDirs) fs.mkdirSync(dir, { recursive: true });
  const at = (c: Controller) => `${base.get(c)}/${opts.instance}`;
  const layout = {
    version: 1,
    dirs: { memory: at('memory'), pids: at('pids'), cpu: at('cpu'), cpuacct: at('cpuacct') },
  } as const;
  return v1Driver(layout, () => {
    for (const dir of instanceDirs) {
      for (const job of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
        if (job.isDirectory()) killAndRemove(`${dir}/${job.name}`);
      }
      killAndRemove(dir);
    }
    removeIfEmpty(lidDirs);
  });
}

/** Job cgroups under a layout already set up (by createV1Driver, on another thread); `close` is the owner's. */
export function v1Driver(layout: Extract<CgroupLayout, { version: 1 }>, close: () => void = () => {}): CgroupDriver {
  const dirOf = (controller: Controller, name: string) => `${layout.dirs[controller]}/${name}`;

  function create(name: string, limits: CgroupLimits): JobCgroup {
    const dirs = [...new Set(NEEDED.map((c) => dirOf(c, name)))];
    const job = makeJobDirs(dirs, v1LimitWrites(limits), (controller) => dirOf(controller, name));
    return {
      name,
      attach: job.attach,
      destroy: job.destroy,
      usage(): CgroupUsage {
        const num = (c: Controller, file: string) => Number((readText(`${dirOf(c, name)}/${file}`) ?? '0').trim()) || 0;
        const pidsPeak = readText(`${dirOf('pids', name)}/pids.peak`);
        return {
          cpuUserMs: num('cpuacct', 'cpuacct.usage_user') / 1e6,
          cpuSystemMs: num('cpuacct', 'cpuacct.usage_sys') / 1e6,
          memoryPeakBytes: num('memory', 'memory.max_usage_in_bytes'),
          pidsPeak: pidsPeak === null ? null : Number(pidsPeak.trim()),
          oomKills: parseKeyValues(readText(`${dirOf('memory', name)}/memory.oom_control`) ?? '').get('oom_kill') ?? 0,
        };
      },
    };
  }

  return {
    version: 1,
    layout,
    instanceDirs: [...new Set(Object.values(layout.dirs))],
    create,
    close,
  };
}
