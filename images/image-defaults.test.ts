import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobDefaults, UNPRIVILEGED_ID } from './image-defaults.js';

const layer = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-defaults-'));
fs.mkdirSync(path.join(layer, 'etc'));
fs.writeFileSync(path.join(layer, 'etc', 'passwd'), 'root:x:0:0::/:/bin/sh\napp:x:1234:2345::/:/bin/sh\n');
fs.writeFileSync(path.join(layer, 'etc', 'group'), 'root:x:0:\nstaff:x:50:\n');
const config = (c: Record<string, unknown>) => ({ rootfs: { type: 'layers' as const, diff_ids: [] }, config: c });

describe("an image's config as the job's defaults", () => {
  it('runs Entrypoint with the job’s arguments, or else Cmd', () => {
    const c = config({ Entrypoint: ['python3'], Cmd: ['-V'] });
    expect(jobDefaults(c, [layer], { argv: [] }).argv).toEqual(['python3', '-V']);
    expect(jobDefaults(c, [layer], { argv: ['-c', 'print(1)'] }).argv).toEqual(['python3', '-c', 'print(1)']);
    expect(() => jobDefaults(config({}), [layer], { argv: [] })).toThrow(/no default command/);
  });

  it('lets the job’s environment and working directory override the image’s', () => {
    const c = config({ Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'], WorkingDir: '/app', Cmd: ['x'] });
    const d = jobDefaults(c, [layer], { argv: [], env: { LANG: 'en' } });
    expect(d.env).toEqual({ PATH: '/usr/bin', LANG: 'en' });
    expect(d.cwd).toBe('/app');
    expect(jobDefaults(c, [layer], { argv: [], cwd: '/tmp' }).cwd).toBe('/tmp');
  });

  it('never runs as root, and looks names up in the image', () => {
    const user = (User?: string) => jobDefaults(config({ User, Cmd: ['x'] }), [layer], { argv: [] });
    expect(user(undefined)).toMatchObject({ uid: UNPRIVILEGED_ID, gid: UNPRIVILEGED_ID });
    expect(user('root')).toMatchObject({ uid: UNPRIVILEGED_ID, gid: UNPRIVILEGED_ID });
    expect(user('0:0')).toMatchObject({ uid: UNPRIVILEGED_ID });
    expect(user('app')).toMatchObject({ uid: 1234, gid: 2345 });
    expect(user('app:staff')).toMatchObject({ uid: 1234, gid: 50 });
    expect(user('1000:1001')).toMatchObject({ uid: 1000, gid: 1001 });
    expect(() => user('ghost')).toThrow(/not in its \/etc\/passwd/);
  });
});
