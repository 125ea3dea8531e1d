// Parsers for command-line option values, shared by every command: each turns its value into what the command
// takes, or throws commander's InvalidArgumentError, which commander prints as
// "option '--memory <size>' argument '12q' is invalid. <why>" and exits (125 for the run commands).
import { InvalidArgumentError } from 'commander';
import { parseDuration, parseSize } from '../common/units.js';

/** Wraps a parser so that whatever it throws becomes commander's "argument ... is invalid. <message>". */
export const asOption =
  <T>(parse: (text: string) => T) =>
  (text: string): T => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };

/** A size with an optional k, m or g suffix (common/units.ts). */
export const asSize = asOption(parseSize);

/** A duration in ms, s or m (common/units.ts). */
export const asDuration = asOption(parseDuration);

/** Any finite number. */
export const asNumber = asOption((text: string) => {
  const n = Number(text);
  if (!Number.isFinite(n) || text.trim() === '') throw new RangeError(`"${text}" is not a number`);
  return n;
});
