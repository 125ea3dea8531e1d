// Names a process instance by pid and kernel start time, so that state a process leaves on disk (cgroup
// directories, image-store leases and temporary files) can later be told apart: left by a crashed process (sweep
// it) or by a live neighbour (leave it alone). A bare pid is not enough: pids are reused.
import fs from 'node:fs';

function startTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null; // field 22, counted after "pid (comm)"
  } catch {
    return null;
  }
}

/** "<pid>-<start time>" of this process. */
export function currentInstanceName(): string {
  return `${process.pid}-${startTime(process.pid)}`;
}

/** True when the process that named itself `name` is gone (or its pid now belongs to another process). */
export function isInstanceDead(name: string): boolean {
  const match = /^(\d+)-(\d+)/.exec(name);
  if (!match) return false; // not ours to judge
  return startTime(Number(match[1])) !== match[2];
}
