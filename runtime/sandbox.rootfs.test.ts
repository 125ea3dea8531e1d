// Issue 2, point 2: the root filesystem is an overlay of read-only layers plus a private, size-capped writable layer.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';

/** A fingerprint of a directory tree: every path with its type, mode, owner, size and content hash. */
function fingerprint(dir: string): string {
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const p = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, p));
      const hash = st.isFile()
        ? crypto
            .createHash('sha1')
            .update(fs.readFileSync(path.join(dir, p)))
            .digest('hex')
        : '';
      lines.push(`${p} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${hash}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return lines.join('\n');
}

describePrivileged('sandbox root filesystem', () => {
  const h = useSandboxes();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-layers-'));
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('stacks layers in order (top wins), with writes going to a private upper layer', async () => {
    const top = path.join(scratch, 'top');
    fs.mkdirSync(path.join(top, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(top, 'etc', 'image-marker'), 'from the top layer\n');
    fs.writeFileSync(path.join(top, 'only-top'), 'x');
    const r = await h.run({
      rootfs: [h.rootfs, top],
      argv: [
        'sh',
        '-c',
        'cat /etc/image-marker; ls /only-top; echo w > /tmp/new && cat /tmp/new; grep " / " /proc/mounts',
      ],
    });
    expect(r.out).toMatch(/^from the top layer\n\/only-top\nw\noverlay \/ overlay /);
    expect(fs.existsSync(path.join(top, 'tmp'))).toBe(false);
  });

  it('never lets two concurrent jobs on the same layers see each other, and never modifies the layers', async () => {
    const before = fingerprint(h.rootfs);
    const job = (me: string, other: string) =>
      h.run({
        argv: [
          'sh',
          '-c',
          `echo ${me} > /tmp/${me}; echo ${me} > /root-${me} 2>/dev/null; sleep 0.3; ls /tmp; test -e /tmp/${other} && echo SAW-${other}; true`,
        ],
        uid: 65534,
      });
    const [a, b] = await Promise.all([job('a', 'b'), job('b', 'a')]);
    expect(a.out).not.toContain('SAW');
    expect(b.out).not.toContain('SAW');
    expect(a.out.trim()).toBe('a');
    expect(b.out.trim()).toBe('b');
    expect(fingerprint(h.rootfs)).toBe(before);
  });

  it("places the caller's files before start with their modes, keeping the image's directories root-owned", async () => {
    const r = await h.run({
      argv: [
        'sh',
        '-c',
        'cat /etc/app.conf; stat -c "%a %u" /etc/app.conf /etc /work/run.sh /work; /work/run.sh; touch /etc/other 2>/dev/null || echo etc-read-only',
      ],
      files: [
        { path: '/etc/app.conf', content: 'conf\n', mode: 0o640 },
        { path: '/work/run.sh', content: '#!/bin/sh\necho ran\n', mode: 0o755 },
      ],
      uid: 4242,
      gid: 4242,
    });
    expect(r.status).toBe('ok');
    expect(r.out.split('\n')).toEqual([
      'conf',
      '640 4242',
      '755 0',
      '755 4242',
      '755 4242',
      'ran',
      'etc-read-only',
      '',
    ]);
  });

  it('starts in the working directory, creating it for the job when missing', async () => {
    const r = await h.run({ argv: ['sh', '-c', 'pwd; touch here && echo writable'], cwd: '/srv/job' });
    expect(r.out).toBe('/srv/job\nwritable\n');
  });

  it('refuses files that would be placed through the image’s symlinks or over its directories', async () => {
    await expect(h.run({ argv: ['true'], files: [{ path: '/bin/sh/x', content: 'x' }] })).rejects.toThrow(/symlink/);
    await expect(h.run({ argv: ['true'], files: [{ path: '/etc', content: 'x' }] })).rejects.toThrow(/directory/);
    await expect(h.run({ argv: ['true'], files: [{ path: '/x/../../etc/passwd', content: 'x' }] })).rejects.toThrow(
      /normal/,
    );
  });
});
