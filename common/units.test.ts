import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseDuration, parseSize } from './units.js';

describe('sizes and durations', () => {
  it('parses sizes with binary suffixes', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('64k')).toBe(64 * 1024);
    expect(parseSize('64M')).toBe(64 * 1024 ** 2);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('16MiB')).toBe(16 * 1024 ** 2);
  });

  it('refuses what is not a size, naming the value', () => {
    for (const bad of ['', 'm', '12q', '-1m', '1e3', '64 mb x']) expect(() => parseSize(bad)).toThrow(/is not a size/);
  });

  it('parses durations in ms, s and m (a bare number is ms)', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('40')).toBe(40);
    expect(() => parseDuration('5h')).toThrow(/is not a duration/);
  });

  it('formats sizes the way it parses them', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
        expect(parseSize(formatSize(n))).toBe(n);
      }),
    );
  });
});
