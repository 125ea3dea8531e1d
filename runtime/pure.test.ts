// The runtime's pure argument builders: no root needed.
import { describe, expect, it } from 'vitest';
import { CLONE, formatCloneFlags, formatMountFlags, MS } from './flags.js';
import { SANDBOX_CLONE_FLAGS } from './namespaces.js';
import { overlayOptions } from './rootfs.js';

describe('flag names', () => {
  it('renders flags by name, keeping unknown bits', () => {
    expect(formatMountFlags(MS.BIND | MS.REC)).toBe('MS_BIND|MS_REC');
    expect(formatMountFlags(0)).toBe('0');
    expect(formatMountFlags(MS.NOSUID | 0x10000000)).toBe('MS_NOSUID|0x10000000');
  });

  it('unshares mount, uts, ipc, net and pid namespaces, never a user namespace', () => {
    expect(formatCloneFlags(SANDBOX_CLONE_FLAGS)).toBe(
      'CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET',
    );
    expect(SANDBOX_CLONE_FLAGS & CLONE.NEWUSER).toBe(0);
  });
});

describe('overlay options', () => {
  it('lists the top layer first, as overlayfs reads lowerdir', () => {
    expect(overlayOptions(['/l/base', '/l/mid', '/l/top'], '/s/upper', '/s/work')).toBe(
      'lowerdir=/l/top:/l/mid:/l/base,upperdir=/s/upper,workdir=/s/work',
    );
  });

  it('refuses paths overlayfs would misread, and options longer than a page', () => {
    expect(() => overlayOptions(['/a:b'], '/u', '/w')).toThrow(/cannot take/);
    expect(() => overlayOptions(['/a,b'], '/u', '/w')).toThrow(/cannot take/);
    expect(() =>
      overlayOptions(
        Array.from({ length: 100 }, (_, i) => `/var/lib/lid/layers/sha256-${'f'.repeat(40)}${i}`),
        '/u',
        '/w',
      ),
    ).toThrow(/the kernel takes 4095/);
  });
});
