// A minimal root filesystem for tests and benchmarks: Debian's static busybox plus its applet links. Built once per
// busybox binary into a cache directory (written to a temporary name, then renamed, so a crash never leaves half).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BUSYBOX = '/bin/busybox';

export function busyboxRootfs(cacheDir = path.join(os.tmpdir(), 'lid-test-rootfs')): string {
  if (!fs.existsSync(BUSYBOX)) {
    throw new Error(`${BUSYBOX} is missing: install Debian's static busybox (apt-get install busybox-static)`);
  }
  const digest = crypto.createHash('sha256').update(fs.readFileSync(BUSYBOX)).digest('hex').slice(0, 16);
  const dir = path.join(cacheDir, `busybox-${digest}`);
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(cacheDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheDir, '.build-'));
  fs.chmodSync(tmp, 0o755); // mkdtemp makes 0700; the root must be searchable by the job's user
  for (const sub of ['bin', 'etc', 'proc', 'dev', 'tmp', 'root']) fs.mkdirSync(path.join(tmp, sub));
  fs.chmodSync(path.join(tmp, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(tmp, 'bin', 'busybox'));
  fs.chmodSync(path.join(tmp, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox');
  for (const applet of applets) fs.symlinkSync('busybox', path.join(tmp, 'bin', applet));
  fs.writeFileSync(
    path.join(tmp, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n',
  );
  fs.writeFileSync(path.join(tmp, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(tmp, 'etc', 'image-marker'), 'busybox test image\n');
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process won the race: use its copy
    if (!fs.existsSync(dir)) throw e;
  }
  return dir;
}
