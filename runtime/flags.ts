// Kernel flag values used by the runtime, with their names, so that errors and logs say "MS_BIND|MS_REC" instead of
// 20480. Pure data and formatting; no syscalls here.

export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REMOUNT: 0x20,
  BIND: 0x1000,
  REC: 0x4000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
} as const;

export const MNT_DETACH = 0x2;
export const O_CLOEXEC = 0o2000000;

/** Renders a bit set as NAME|NAME using a table of flag values; unknown bits are kept as hex. */
export function formatFlags(value: number, table: Record<string, number>, prefix: string): string {
  const names: string[] = [];
  let rest = value >>> 0;
  for (const [name, bit] of Object.entries(table)) {
    if ((rest & bit) === bit && bit !== 0) {
      names.push(prefix + name);
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.length ? names.join('|') : '0';
}

export const formatMountFlags = (flags: number): string => formatFlags(flags, MS, 'MS_');
export const formatCloneFlags = (flags: number): string => formatFlags(flags, CLONE, 'CLONE_');
