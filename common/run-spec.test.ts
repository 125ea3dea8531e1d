import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, RunSpecSchema } from './run-spec.js';

const issues = (input: unknown) =>
  RunSpecSchema.safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

describe('RunSpec validation', () => {
  it('fills defaults: unprivileged uid, root cwd, default limits, no network', () => {
    const spec = RunSpecSchema.parse({ rootfs: '/r', argv: ['true'] });
    expect(spec).toMatchObject({
      uid: 65534,
      gid: 65534,
      cwd: '/',
      hostname: 'lid',
      network: 'none',
      limits: DEFAULT_LIMITS,
    });
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
