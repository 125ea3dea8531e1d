// The image store is closed to the host's other users. The attack: a tenant's image carries a setuid-root copy of a
// program that prints its effective uid, and an unprivileged host user (uid 65534) runs it out of the store. The
// store must strip the bit and not even let that user reach the file (EACCES); the control shows the attack is
// real on this machine: the same setuid-root file in a world-reachable directory of the same filesystem, run by the
// same user, prints euid 0. An older store (0755 directories, a setuid file in a layer) is attackable until it is
// opened, and fixed by the one-time sweep.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';
import { importImage } from './import.js';
import { ImageStore } from './store.js';
import { stripPrivilegeBits } from './store-privacy.js';

const NOBODY = 65534;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-store-privacy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(tmp, `case-${++n}`);

/** A static program that prints its effective uid: what a setuid-root file gives whoever runs it. */
function euidProgram(): Buffer {
  const src = path.join(tmp, 'euid.c');
  const out = path.join(tmp, 'euid');
  if (!fs.existsSync(out)) {
    fs.writeFileSync(
      src,
      '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("euid=%d\\n",(int)geteuid());return 0;}\n',
    );
    execFileSync('cc', ['-O1', '-static', '-o', out, src], { stdio: 'pipe' });
  }
  return fs.readFileSync(out);
}

/** Runs `file` as uid/gid 65534 with no supplementary groups: what any local user could do. */
function runAsNobody(file: string): { euid: string | null; error: string | null } {
  const r = spawnSync(file, [], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 });
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code ?? null;
  return { euid: /^euid=(\d+)$/m.exec(r.stdout ?? '')?.[1] ?? null, error: code };
}

const modeOf = (p: string) => fs.statSync(p).mode & 0o7777;

/** A mount option of the filesystem holding `dir` (nosuid defeats the control). */
const mountOptions = (dir: string) => execFileSync('findmnt', ['-no', 'OPTIONS', '-T', dir], { encoding: 'utf8' });

describePrivileged('a private image store', () => {
  let layoutDir: string;
  let layerDigest: string;
  beforeAll(async () => {
    fs.chmodSync(tmp, 0o755); // world-reachable, so that only the store's own modes can stop the attack
    layoutDir = fresh();
    const img = await writeOciLayout(layoutDir, {
      layers: [busyboxLayer([{ type: 'file', name: 'bin/euid', content: euidProgram(), mode: 0o4755, uid: 0 }])],
      refName: 'setuid:1',
    });
    layerDigest = img.layerDigests[0]!;
  });

  it('strips setuid at unpack and keeps host users out of the store, though the attack works outside it', async () => {
    const dataDir = fresh();
    const store = ImageStore.open(dataDir);
    await importImage(store, layoutDir);
    const { image, release } = await store.acquire('setuid:1');
    release();
    const layer = store.layout.layer(layerDigest);
    expect(image.layerDirs).toEqual([layer]);
    const planted = path.join(layer, 'bin', 'euid');

    expect(fs.statSync(planted)).toMatchObject({ uid: 0, mode: 0o100755 });
    expect(modeOf(dataDir)).toBe(0o711);
    for (const dir of [store.layout.root, ...store.layout.privateDirs])
      expect([dir, modeOf(dir)]).toEqual([dir, 0o700]);
    expect(modeOf(layer)).toBe(0o755); // the layer's own root keeps its mode: jobs see it as "/"
    expect(runAsNobody(planted)).toEqual({ euid: null, error: 'EACCES' });

    // Control: the same bytes as a setuid-root file in a world-reachable directory next to the store.
    const exposed = path.join(tmp, 'exposed-euid');
    fs.copyFileSync(path.join(tmp, 'euid'), exposed);
    try {
      fs.chownSync(exposed, 0, 0);
      fs.chmodSync(exposed, 0o4755);
      const options = mountOptions(exposed);
      if (/(^|,)nosuid(,|$)/.test(options)) {
        console.warn(`control skipped: ${tmp} is on a nosuid mount (${options.trim()}), where setuid never works`);
      } else {
        expect(runAsNobody(exposed)).toEqual({ euid: '0', error: null });
      }
    } finally {
      fs.rmSync(exposed, { force: true });
    }
  });

  it('fixes a store an older Lid left open the first time it is opened, and only then', async () => {
    const dataDir = fresh();
    const store = ImageStore.open(dataDir);
    await importImage(store, layoutDir);
    const layer = (await store.resolve('setuid:1')).layerDirs[0]!;
    const planted = path.join(layer, 'bin', 'euid');
    // What an older Lid left: every directory 0755, the setuid bit kept, no sweep marker. A symlink in the layer
    // to a setuid file outside it checks that the sweep never follows links out of the store.
    const outside = path.join(tmp, `outside-${n}`);
    fs.writeFileSync(outside, 'not a layer file');
    fs.chmodSync(outside, 0o4700);
    fs.symlinkSync(outside, path.join(layer, 'bin', 'outside-link'));
    for (const dir of [dataDir, store.layout.root, ...store.layout.privateDirs]) fs.chmodSync(dir, 0o755);
    fs.chmodSync(planted, 0o4755);
    fs.rmSync(store.layout.privateMarker);
    const options = mountOptions(planted);
    if (/(^|,)nosuid(,|$)/.test(options)) console.warn(`control skipped: the store is on a nosuid mount (${options})`);
    else expect(runAsNobody(planted)).toEqual({ euid: '0', error: null }); // the old layout is attackable

    const reopened = ImageStore.open(dataDir);
    expect(fs.statSync(planted).mode).toBe(0o100755);
    expect(modeOf(dataDir)).toBe(0o711);
    for (const dir of [reopened.layout.root, ...reopened.layout.privateDirs]) expect(modeOf(dir)).toBe(0o700);
    expect(runAsNobody(planted)).toEqual({ euid: null, error: 'EACCES' });
    expect(modeOf(outside)).toBe(0o4700);
    expect(fs.existsSync(reopened.layout.privateMarker)).toBe(true);

    // The marker makes the layer sweep run once: a later open leaves layers alone (directory modes are always set).
    fs.chmodSync(planted, 0o4755);
    fs.chmodSync(reopened.layout.layersDir, 0o755);
    ImageStore.open(dataDir);
    expect(fs.statSync(planted).mode).toBe(0o104755);
    expect(modeOf(reopened.layout.layersDir)).toBe(0o700);
    expect(stripPrivilegeBits(layer)).toBe(1);
    expect(fs.statSync(planted).mode).toBe(0o100755);
  });

  it('makes its directories with the right modes whatever the umask', () => {
    for (const umask of [0o000, 0o077, 0o022]) {
      const dataDir = fresh();
      const old = process.umask(umask);
      let store: ImageStore;
      try {
        store = ImageStore.open(dataDir);
      } finally {
        process.umask(old);
      }
      expect([umask, modeOf(dataDir)]).toEqual([umask, 0o711]);
      for (const dir of [store.layout.root, ...store.layout.privateDirs])
        expect([umask, modeOf(dir)]).toEqual([umask, 0o700]);
    }
  });
});
