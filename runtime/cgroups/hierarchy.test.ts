import { describe, expect, it } from 'vitest';
import { parseCgroupMounts, parseProcCgroup } from './hierarchy.js';

describe('cgroup hierarchy discovery', () => {
  it('finds v1 controller hierarchies (co-mounted or not) and the unified one in mountinfo', () => {
    const mountinfo = [
      '30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755',
      '33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
      '34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory',
      '35 30 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
      '36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
    ].join('\n');
    expect(parseCgroupMounts(mountinfo)).toEqual([
      { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'], version: 1 },
      { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], version: 1 },
      { mountPoint: '/sys/fs/cgroup/unified', controllers: [], version: 2 },
      { mountPoint: '/sys/fs/cgroup/systemd', controllers: [], version: 1 },
    ]);
  });

  it('reads where this process sits in each hierarchy', () => {
    const own = parseProcCgroup('4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/user.slice/x.scope\n');
    expect(own.get('memory')).toBe('/process_api/abc');
    expect(own.get('cpuacct')).toBe('/');
    expect(own.get('')).toBe('/user.slice/x.scope');
  });
});
