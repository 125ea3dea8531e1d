// Who a job is: the image's USER inside (names from the image's own files, resolved inside the sandbox), a host uid
// no other running sandbox has outside, and the image's own files owned as the image says.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostProcessesWith } from '../test/host-processes.js';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';
import { ensureInitBinary } from './init/init-binary.js';
import * as sys from './syscalls.js';
import { accountsInRange, DEFAULT_UID_RANGE, SLOT_SPAN } from './uid-slots.js';
import { createUserNamespace } from './user-namespace.js';

/** A layer over busybox with users of its own and a home directory owned by one of them. */
function userLayer(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-users-'));
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.writeFileSync(
    path.join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\nbig:x:70000:70000::/:/bin/sh\n',
  );
  fs.writeFileSync(path.join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\nstaff:x:50:\nappgrp:x:2345:\n');
  fs.mkdirSync(path.join(dir, 'home', 'app'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'home', 'app', '.profile'), 'export APP=1\n');
  fs.chownSync(path.join(dir, 'home', 'app', '.profile'), 1234, 2345);
  fs.chmodSync(path.join(dir, 'home', 'app', '.profile'), 0o600);
  fs.chownSync(path.join(dir, 'home', 'app'), 1234, 2345);
  fs.chmodSync(path.join(dir, 'home', 'app'), 0o700);
  return dir;
}

/**
 * Whether this kernel can mount `dir` idmapped (ext4, xfs, btrfs since 5.12-5.15; tmpfs since 6.3; never 9p or
 * NFS), with the same calls the runtime makes. Where it cannot, the runtime stacks layers as they are and image files
 * owned by anyone but root show as nobody; both cases are real behaviour, checked below.
 */
function canIdmap(dir: string): boolean {
  const userns = createUserNamespace(ensureInitBinary(), DEFAULT_UID_RANGE.first, SLOT_SPAN);
  try {
    sys.close(sys.idmappedTree(dir, userns));
    return true;
  } catch (e) {
    if (e instanceof sys.SyscallError) return false;
    throw e;
  } finally {
    sys.close(userns);
  }
}

/** The host uid of a process, or null when it has ended meanwhile. */
function uidOf(pid: number): number | null {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  } catch {
    return null;
  }
}

describePrivileged('sandbox identity', () => {
  const h = useSandboxes();
  let layer: string;
  let layers: string[];
  beforeAll(() => {
    layer = userLayer();
    layers = [h.rootfs, layer];
  });
  afterAll(() => fs.rmSync(layer, { recursive: true, force: true }));

  it("runs as the image's named user, whose own files are its own", async () => {
    const r = await h.run({
      rootfs: layers,
      user: 'app',
      argv: [
        'sh',
        '-c',
        'id; whoami; ls -lnd /home/app; cat /home/app/.profile 2>&1; echo hi > /home/app/new; echo $?',
      ],
    });
    const [id, whoami, home, ...rest] = r.out.trim().split('\n');
    expect(id).toBe('uid=1234(app) gid=2345(appgrp)');
    expect(whoami).toBe('app');
    if (canIdmap(layer)) {
      // The layer is mounted idmapped: the image's owner 1234 is the job's 1234.
      expect(home).toMatch(/^drwx------\s+\d+\s+1234\s+2345\s/);
      expect(rest).toEqual(['export APP=1', '0']);
    } else {
      console.warn(`this kernel cannot mount ${layer} idmapped: image files owned by 1234 show as nobody`);
      expect(home).toMatch(/^drwx------\s+\d+\s+65534\s+65534\s/);
      expect(rest.at(-1)).not.toBe('0');
    }
  });

  it('takes a group by name or number, and plain numeric ids the image does not list', async () => {
    const named = await h.run({ rootfs: layers, user: 'app:staff', argv: ['id'] });
    expect(named.out.trim()).toBe('uid=1234(app) gid=50(staff)');
    const numeric = await h.run({ rootfs: layers, user: '4242:4343', argv: ['sh', '-c', 'id -u; id -g'] });
    expect(numeric.out.trim().split('\n')).toEqual(['4242', '4343']);
    const viaUid = await h.run({ rootfs: layers, uid: 1234, argv: ['whoami'] });
    expect(viaUid.out.trim()).toBe('app');
  });

  it('never runs as root: root, uid 0 and gid 0 become 65534', async () => {
    for (const user of ['root', '0', 'root:root', 'app:root', '0:50']) {
      const r = await h.run({ rootfs: layers, user, argv: ['sh', '-c', 'id -u; id -g'] });
      expect(r.out.trim().split('\n'), user).toEqual(['65534', '65534']);
    }
  });

  it("answers an unknown user or group, or ids it cannot map, with invalid_image naming the image's user", async () => {
    await expect(h.run({ rootfs: layers, user: 'ghost', argv: ['id'] })).rejects.toMatchObject({
      code: 'invalid_image',
      message: `the image's user "ghost" is not in its /etc/passwd`,
    });
    await expect(h.run({ rootfs: layers, user: 'app:ghosts', argv: ['id'] })).rejects.toMatchObject({
      code: 'invalid_image',
      message: `the image's group "ghosts" is not in its /etc/group`,
    });
    await expect(h.run({ rootfs: layers, user: 'big', argv: ['id'] })).rejects.toMatchObject({
      code: 'invalid_image',
      message: expect.stringMatching(/above 65535/),
    });
  });

  it("gives the files and directories Lid places to the job's user", async () => {
    const r = await h.run({
      rootfs: layers,
      user: 'app',
      cwd: '/home/app/work',
      files: [{ path: '/home/app/work/in.txt', content: 'data', mode: 0o640 }],
      argv: ['sh', '-c', 'stat -c "%u:%g %a %n" /home/app/work /home/app/work/in.txt /home/app /tmp; pwd'],
    });
    expect(r.out.trim().split('\n')).toEqual([
      '1234:2345 755 /home/app/work',
      '1234:2345 640 /home/app/work/in.txt',
      '1234:2345 700 /home/app',
      '0:0 1777 /tmp',
      '/home/app/work',
    ]);
  });

  it('gives every running sandbox its own host uid, in the reserved range and no host account’s', async () => {
    // Long enough that all three run at once even under the v2 VM's emulated CPU, where each takes a while to start.
    const marker = '3.4441';
    const running = Array.from({ length: 3 }, () =>
      h.run({ rootfs: layers, user: 'app', argv: ['sh', '-c', `sleep ${marker}; id -u`] }),
    );
    // Each sandbox shows as two processes (sh and its sleep, same uid): wait until three distinct uids are seen at
    // once, which a shared uid never gives.
    let uids: number[] = [];
    for (let waited = 0; new Set(uids).size < 3 && waited < 12_000; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
      uids = hostProcessesWith(marker)
        .map(uidOf)
        .filter((uid): uid is number => uid !== null && uid !== 0);
    }
    expect(new Set(uids).size).toBe(3);
    const { first, count } = DEFAULT_UID_RANGE;
    for (const uid of uids) {
      expect(uid).toBeGreaterThanOrEqual(first);
      expect(uid).toBeLessThan(first + count);
      expect((uid - first) % 65536).toBe(1234); // the image's uid, at its slot's offset
    }
    expect(accountsInRange(DEFAULT_UID_RANGE)).toEqual([]);
    for (const r of await Promise.all(running)) expect(r.out.trim()).toBe('1234');
  });
});
