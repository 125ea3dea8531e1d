// The one interface behind which cgroup v1 and v2 live (chosen by detect.ts). A driver owns this runtime instance's
// directory in each hierarchy (<base>/lid/<instance>), makes one cgroup per job under it, and sweeps what crashed
// instances left behind. Limits are expressed once, in v2 terms, by limits.ts.

export interface CgroupLimits {
  memoryBytes: number;
  /** Fraction of one CPU, e.g. 0.5 */
  cpus: number;
  pids: number;
}

export interface CgroupUsage {
  cpuUserMs: number;
  cpuSystemMs: number;
  memoryPeakBytes: number;
  pidsPeak: number | null;
  oomKills: number;
}

export interface JobCgroup {
  readonly name: string;
  /** Moves a process (all its threads) in. Called while the sandbox's init still waits at its gate. */
  attach(pid: number): void;
  usage(): CgroupUsage;
  /** Kills whatever still runs in the cgroup and removes it; safe to call twice. */
  destroy(): void;
}

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** Directories this instance owns, one per hierarchy (for diagnostics and leak checks). */
  readonly instanceDirs: readonly string[];
  create(name: string, limits: CgroupLimits): JobCgroup;
  /** Removes this instance's directories (after every job cgroup is gone). */
  close(): void;
}
