// Chooses the cgroup driver by looking at /sys/fs/cgroup: the cgroup2 filesystem there means a unified (v2) host;
// a tmpfs with controller hierarchies under it means v1 or hybrid, where the controllers live on v1.
import fs from 'node:fs';
import { LidError } from '../../common/errors.js';
import type { CgroupDriver, CgroupLayout } from './driver.js';
import { readCgroupMounts, readOwnCgroups } from './hierarchy.js';
import { currentInstanceName } from './instance.js';
import { createV1Driver, v1Driver } from './v1.js';
import { createV2Driver, v2Driver } from './v2.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export function detectCgroupVersion(root = '/sys/fs/cgroup'): 1 | 2 {
  return fs.statfsSync(root).type === CGROUP2_SUPER_MAGIC ? 2 : 1;
}

/** Sets up this instance's tree (sweeping what crashed instances left) and returns its driver: once per runtime. */
export function createCgroupDriver(opts: { parent?: string } = {}): CgroupDriver {
  const mounts = readCgroupMounts();
  const own = readOwnCgroups();
  const instance = currentInstanceName();
  if (detectCgroupVersion() === 2) {
    const mount = mounts.find((m) => m.version === 2 && m.mountPoint === '/sys/fs/cgroup');
    if (!mount) throw new LidError('unsupported', 'cgroup2 is not mounted at /sys/fs/cgroup');
    return createV2Driver({ mount, own, parent: opts.parent, instance });
  }
  return createV1Driver({ mounts, own, parent: opts.parent, instance });
}

/** A driver for job cgroups under a layout another driver set up: reads nothing, sweeps nothing, owns nothing. */
export function cgroupDriverFor(layout: CgroupLayout): CgroupDriver {
  return layout.version === 1 ? v1Driver(layout) : v2Driver(layout);
}
