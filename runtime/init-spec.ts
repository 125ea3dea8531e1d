// What the spawner tells lid-init (runtime/init/lid-init.c) about its job, as one blob it reads from fd 5 (a memfd
// filled once the root is built, read after the gate): NUL-ended text
// fields, then the raw seccomp program. A blob in a memfd rather than argv and environment: lid-init runs as
// root until it has dropped every privilege, so it must not start with the tenant's environment (a static binary's
// libc still reads variables such as GLIBC_TUNABLES), and argv would show in /proc/PID/cmdline to every host user.
// Pure: built here and unit-tested; lid-init.c's read_spec is the only reader, and the two change together.

export const INIT_SPEC_MAGIC = 'LID-INIT-SPEC 1';

export interface InitSpec {
  /** Host id of the sandbox's uid slot: its uid u is idBase + u on the host (runtime/uid-slots.ts). */
  idBase: number;
  /** The highest uid or gid the slot maps. */
  maxId: number;
  /** OCI "User" ("name", "uid", "name:group", "uid:gid"), resolved by lid-init inside the sandbox; "" for 65534. */
  user: string;
  cwd: string;
  rlimits: { nofile: number; stack: number; fsize: number };
  /** A networked sandbox's eth0: its IPv4 address, prefix and default gateway (runtime/net/); null for none. */
  net: { address: string; prefix: number; gateway: string } | null;
  /** Paths (inside the sandbox) that Lid placed for the job: lid-init gives them to the job's user. */
  owned: string[];
  argv: string[];
  /** The tenant's environment, applied by lid-init just before exec. */
  env: Record<string, string>;
  seccomp: Uint8Array;
}

function field(text: string, what: string): string {
  if (text.includes('\0')) throw new RangeError(`${what} must not contain NUL bytes`);
  return `${text}\0`;
}

function count(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a whole number >= 0, got ${n}`);
  return `${n}\0`;
}

export function encodeInitSpec(spec: InitSpec): Buffer {
  if (spec.argv.length === 0) throw new RangeError('argv needs a command');
  if (spec.seccomp.length === 0 || spec.seccomp.length % 8 !== 0)
    throw new RangeError(`the seccomp program must be whole 8-byte instructions, got ${spec.seccomp.length} bytes`);
  const env = Object.entries(spec.env).map(([k, v]) => {
    if (k === '' || k.includes('=')) throw new RangeError(`bad environment variable name ${JSON.stringify(k)}`);
    return `${k}=${v}`;
  });
  const text = [
    field(INIT_SPEC_MAGIC, 'magic'),
    count(spec.idBase, 'idBase'),
    count(spec.maxId, 'maxId'),
    field(spec.user, 'user'),
    field(spec.cwd, 'cwd'),
    count(spec.rlimits.nofile, 'rlimits.nofile'),
    count(spec.rlimits.stack, 'rlimits.stack'),
    count(spec.rlimits.fsize, 'rlimits.fsize'),
    field(spec.net?.address ?? '', 'net.address'),
    count(spec.net?.prefix ?? 0, 'net.prefix'),
    field(spec.net?.gateway ?? '', 'net.gateway'),
    count(spec.owned.length, 'owned length'),
    ...spec.owned.map((p) => field(p, 'an owned path')),
    count(spec.argv.length, 'argv length'),
    ...spec.argv.map((a, i) => field(a, `argv[${i}]`)),
    count(env.length, 'env length'),
    ...env.map((e) => field(e, 'an environment entry')),
    count(spec.seccomp.length, 'seccomp length'),
  ].join('');
  return Buffer.concat([Buffer.from(text), spec.seccomp]);
}
