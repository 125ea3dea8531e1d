import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, DEFAULT_RLIMITS, RunSpecSchema } from './run-spec.js';

const issues = (input: unknown) =>
  RunSpecSchema.safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

describe('RunSpec validation', () => {
  it('fills defaults: no user (the runtime runs 65534:65534), root cwd, default limits and rlimits, no network', () => {
    const spec = RunSpecSchema.parse({ rootfs: '/r', argv: ['true'] });
    expect(spec).toMatchObject({
      cwd: '/',
      hostname: 'lid',
      network: 'none',
      limits: DEFAULT_LIMITS,
      rlimits: DEFAULT_RLIMITS,
    });
    expect(spec.user).toBeUndefined();
    expect(spec.uid).toBeUndefined();
  });

  it('takes a user as NAME, UID, NAME:GROUP or UID:GID, but not with uid/gid as well', () => {
    for (const user of ['app', '1000', 'app:staff', '1000:50'])
      expect(issues({ rootfs: '/r', argv: ['x'], user })).toEqual([]);
    expect(issues({ rootfs: '/r', argv: ['x'], user: 'a:b:c' })).toEqual([
      'user: must be NAME, UID, NAME:GROUP or UID:GID',
    ]);
    expect(issues({ rootfs: '/r', argv: ['x'], user: 'app', uid: 5 })).toEqual([
      'user: give either user or uid/gid, not both',
    ]);
    expect(issues({ rootfs: '/r', argv: ['x'], rlimits: { nofile: 3 } })).toEqual([
      'rlimits.nofile: Too small: expected number to be >=16',
    ]);
  });

  it('names the field of every mistake', () => {
    expect(issues({ rootfs: '/r', argv: [] })).toEqual(['argv: argv needs a command']);
    expect(issues({ rootfs: '/r', argv: ['x'], uid: 0 })).toEqual(['uid: uid 0 is not allowed: jobs run unprivileged']);
    expect(issues({ rootfs: '/r', argv: ['x'], limits: { memoryBytes: 1024 } })[0]).toMatch(
      /^limits.memoryBytes: memoryBytes must be at least/,
    );
    expect(issues({ rootfs: '/r', argv: ['x'], limits: { cpu: 1 } })[0]).toMatch(/^limits: Unrecognized key: "cpu"/);
    expect(issues({ rootfs: '/r', argv: ['x'], env: { 'BAD-NAME': 'x' } })[0]).toMatch(/^env.BAD-NAME/);
    expect(issues({ rootfs: '/r', argv: ['x'], cwd: 'relative' })[0]).toMatch(/^cwd: must be an absolute path/);
  });

  it('refuses file paths that escape, hide under kernel trees or name directories', () => {
    for (const path of ['etc/x', '/a/../b', '/a//b', '/proc/x', '/dev/null', '/', '/tmp/']) {
      expect(issues({ rootfs: '/r', argv: ['x'], files: [{ path, content: 'x' }] }).length, path).toBeGreaterThan(0);
    }
    expect(
      issues({ rootfs: '/r', argv: ['x'], files: [{ path: '/work/main.py', content: new Uint8Array([1]) }] }),
    ).toEqual([]);
  });
});
