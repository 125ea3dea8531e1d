// Limits as cgroup file writes, in the order the kernel needs them. Pure functions: unit-tested without root.
import type { CgroupLimits } from './driver.js';

export const CPU_PERIOD_US = 100_000;

export interface CgroupWrite {
  controller: 'memory' | 'pids' | 'cpu';
  file: string;
  value: string;
  /** Absent on some kernels (no swap accounting, for instance): skip when the file does not exist. */
  optional?: boolean;
}

function cpuQuotaUs(cpus: number): number {
  return Math.max(1000, Math.round(cpus * CPU_PERIOD_US)); // the kernel refuses quotas under 1 ms
}

export function v2LimitWrites(limits: CgroupLimits): CgroupWrite[] {
  return [
    { controller: 'memory', file: 'memory.max', value: String(limits.memoryBytes) },
    { controller: 'memory', file: 'memory.swap.max', value: '0', optional: true },
    { controller: 'pids', file: 'pids.max', value: String(limits.pids) },
    { controller: 'cpu', file: 'cpu.max', value: `${cpuQuotaUs(limits.cpus)} ${CPU_PERIOD_US}` },
  ];
}

export function v1LimitWrites(limits: CgroupLimits): CgroupWrite[] {
  return [
    { controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memoryBytes) },
    // memory+swap must be set after memory (it may never be lower); equal values mean no swap at all.
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(limits.memoryBytes), optional: true },
    { controller: 'memory', file: 'memory.swappiness', value: '0', optional: true },
    { controller: 'pids', file: 'pids.max', value: String(limits.pids) },
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(cpuQuotaUs(limits.cpus)) },
  ];
}

/** Reads "key value" lines (cpu.stat, memory.events, memory.oom_control) into numbers. */
export function parseKeyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) out.set(key, Number(value));
  }
  return out;
}
