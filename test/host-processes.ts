// Host processes whose command line contains a marker: how tests find processes a job tried to leave behind.
import fs from 'node:fs';

export function hostProcessesWith(marker: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker) ? [Number(p)] : [];
      } catch {
        return [];
      }
    });
}
