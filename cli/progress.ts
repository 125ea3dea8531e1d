// Progress for long steps (pull, build, unpack): one line rewritten in place on a terminal, nothing at all when
// stderr is a pipe or a log file -- those get only the final result.

export type ProgressFn = (what: string, done: number, total: number, unit?: 'bytes' | 'items') => void;

function human(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): {
  report: ProgressFn;
  done: () => void;
} {
  if (!stream.isTTY) return { report: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    report(what, done, total, unit = 'bytes') {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      shown = true;
      const amount = unit === 'bytes' ? `${human(done)} / ${human(total)}` : `${done}/${total}`;
      const pct = total > 0 ? ` ${Math.floor((done / total) * 100)}%` : '';
      stream.write(`\r\x1b[2K${what}${total > 0 ? `${pct} (${amount})` : ''}`);
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
      shown = false;
    },
  };
}
