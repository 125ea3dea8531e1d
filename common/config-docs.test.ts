// The README's configuration table is what operators read: it must list every variable common/config.ts reads, in
// the same order, with the same default and description.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from './config.js';

describe("the README's configuration table", () => {
  it('lists every variable, with its default and meaning, as common/config.ts does', () => {
    const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('| variable '));
    const rows = [...table.matchAll(/^\| `([A-Z0-9_]+)` +\| (?:`([^`]*)`)? *\| (.*?) *\|$/gm)].map((m) => ({
      env: m[1],
      default: m[2] ?? undefined,
      doc: m[3]!.replace(/\\\|/g, '|'),
    }));
    expect(rows).toEqual(describeConfig().map((c) => ({ env: c.env, default: c.default, doc: c.doc })));
  });
});
