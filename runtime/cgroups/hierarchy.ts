// Where the cgroup hierarchies are mounted and where this process sits in each, read from /proc/self/mountinfo and
// /proc/self/cgroup. Parsing is pure (tested with sample text); the readers are one line each.
import fs from 'node:fs';

export interface CgroupMount {
  mountPoint: string;
  /** v1: the controllers bound to this hierarchy; v2: empty */
  controllers: string[];
  version: 1 | 2;
}

/** Parses mountinfo lines of cgroup filesystems. Fields: id parent major:minor root mountpoint opts ... - fstype src superopts */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype, , superOpts = ''] = line.slice(sep + 3).split(' ');
    const mountPoint = (left[4] ?? '').replace(/\\040/g, ' ');
    if (fstype === 'cgroup2') mounts.push({ mountPoint, controllers: [], version: 2 });
    if (fstype === 'cgroup') {
      const known = [
        'memory',
        'pids',
        'cpu',
        'cpuacct',
        'cpuset',
        'blkio',
        'devices',
        'freezer',
        'net_cls',
        'net_prio',
        'perf_event',
        'hugetlb',
        'rdma',
        'misc',
      ];
      mounts.push({ mountPoint, controllers: superOpts.split(',').filter((o) => known.includes(o)), version: 1 });
    }
  }
  return mounts;
}

/** Parses /proc/self/cgroup into controller -> path (v1) and the unified path under the key "" (v2). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    if (match[1] === '') out.set('', match[2]!);
    for (const controller of match[1]!.split(',')) if (controller) out.set(controller, match[2]!);
  }
  return out;
}

export function readCgroupMounts(): CgroupMount[] {
  return parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

export function readOwnCgroups(): Map<string, string> {
  return parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
}
