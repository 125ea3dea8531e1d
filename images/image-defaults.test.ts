import { describe, expect, it } from 'vitest';
import { jobDefaults } from './image-defaults.js';

const config = (c: Record<string, unknown>) => ({ rootfs: { type: 'layers' as const, diff_ids: [] }, config: c });

describe("an image's config as the job's defaults", () => {
  it('runs Entrypoint with the job’s arguments, or else Cmd', () => {
    const c = config({ Entrypoint: ['python3'], Cmd: ['-V'] });
    expect(jobDefaults(c, { argv: [] }).argv).toEqual(['python3', '-V']);
    expect(jobDefaults(c, { argv: ['-c', 'print(1)'] }).argv).toEqual(['python3', '-c', 'print(1)']);
    expect(() => jobDefaults(config({}), { argv: [] })).toThrow(/no default command/);
  });

  it('lets the job’s environment and working directory override the image’s', () => {
    const c = config({ Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'], WorkingDir: '/app', Cmd: ['x'] });
    const d = jobDefaults(c, { argv: [], env: { LANG: 'en' } });
    expect(d.env).toEqual({ PATH: '/usr/bin', LANG: 'en' });
    expect(d.cwd).toBe('/app');
    expect(jobDefaults(c, { argv: [], cwd: '/tmp' }).cwd).toBe('/tmp');
  });

  // Names are resolved inside the sandbox (runtime/sandbox.user.test.ts): here the string only passes through.
  it("passes the image's User on as it is, and refuses one that is not NAME[:GROUP] or UID[:GID]", () => {
    const user = (User?: string) => jobDefaults(config({ User, Cmd: ['x'] }), { argv: [] }).user;
    expect(user(undefined)).toBeUndefined();
    expect(user('')).toBeUndefined();
    expect(user('app:staff')).toBe('app:staff');
    expect(user('1000')).toBe('1000');
    expect(() => user('a:b:c')).toThrow(/User "a:b:c" is not NAME, UID/);
    expect(() => user('has space')).toThrow(/is not NAME/);
  });
});
