// The one interface behind which cgroup v1 and v2 live (chosen by detect.ts). A driver owns this runtime instance's
// directory in each hierarchy (<base>/lid/<instance>), makes one cgroup per job under it, and sweeps what crashed
// instances left behind. Limits are expressed once, in v2 terms, by limits.ts.
// The runtime sets the tree up once, on its own thread; its spawner threads get the resulting layout (plain data,
// sent with the thread's start) and make job cgroups under it without reading /proc or sweeping again.

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

/** Where this instance's job cgroups go: per v1 controller, or the one v2 directory. */
export type CgroupLayout =
  { version: 1; dirs: Record<'memory' | 'pids' | 'cpu' | 'cpuacct', string> } | { version: 2; dir: string };

export interface CgroupDriver {
  readonly version: 1 | 2;
  /** What a driver on another thread needs (cgroupDriverFor in detect.ts). */
  readonly layout: CgroupLayout;
  /** Directories this instance owns, one per hierarchy (for diagnostics and leak checks). */
  readonly instanceDirs: readonly string[];
  create(name: string, limits: CgroupLimits): JobCgroup;
  /** Removes this instance's directories (after every job cgroup is gone); a no-op for a driver made from a layout. */
  close(): void;
}
