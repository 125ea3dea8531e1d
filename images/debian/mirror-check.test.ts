// Which mirror the check before `lid up`'s image builds asks: the first http(s) source in apt's files, in either of
// apt's formats (files this test writes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { firstMirror } from './mirror-check.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-mirror-check-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
};

describe('firstMirror', () => {
  it('reads one-line sources (with options) and deb822 sources, skipping comments and files that are not there', () => {
    const list = write(
      'a.list',
      '# deb http://commented.example/debian bookworm main\ndeb [arch=amd64] http://mirror.example:8080/debian bookworm main\n',
    );
    const sources = write(
      'b.sources',
      'Types: deb\n# http://snapshot.example/x\nURIs: https://deb.example/debian\nSuites: bookworm\n',
    );
    expect(firstMirror([path.join(tmp, 'missing.list'), list, sources])?.href).toBe(
      'http://mirror.example:8080/debian',
    );
    expect(firstMirror([sources])?.href).toBe('https://deb.example/debian');
    expect(firstMirror([write('c.list', 'deb file:/srv/local bookworm main\n')])).toBeNull();
  });
});
