// Human-friendly sizes ("64m") and durations ("5s") for the CLI and configuration, parsed strictly so that a typo
// is an error that names the bad value instead of a silent default.

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** Parses "512", "64k", "64m", "2g" (binary units, case-insensitive) into bytes. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgb]?)(?:i?b)?\s*$/i.exec(text);
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new RangeError(`"${text}" is not a size: use a number of bytes with an optional k, m or g suffix (e.g. 64m)`);
  }
  const bytes = Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`"${text}" is too large`);
  return bytes;
}

/** Parses "250ms", "5s", "2m" (a bare number means milliseconds) into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(text);
  if (!match) throw new RangeError(`"${text}" is not a duration: use a number with ms, s or m (e.g. 5s)`);
  const unit = TIME_UNITS[(match[2] ?? 'ms').toLowerCase()]!;
  return Math.round(Number(match[1]) * unit);
}

/** Formats bytes the way parseSize reads them, for messages ("64m"). */
export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['g', 1024 ** 3],
    ['m', 1024 ** 2],
    ['k', 1024],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return `${bytes}`;
}
