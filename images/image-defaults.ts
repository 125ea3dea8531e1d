// An image's config becomes a job's defaults (OCI image-spec "config" semantics): Env is the base environment the
// job's own variables override; Entrypoint is always run, followed by the job's arguments or else Cmd; WorkingDir
// is the starting directory; User is the identity. The User string is passed on as it is: names in it are looked up
// in the image's /etc/passwd and /etc/group by the sandbox's init, inside the sandbox, because host-side code must
// never walk an image's paths (an image's `etc -> /etc` or `etc/passwd -> /dev/zero` would reach the host).
// Jobs never run as root: the runtime turns root, or no User at all, into the unprivileged 65534:65534.
import { LidError } from '../common/errors.js';
import type { ImageConfig } from './oci.js';

export interface JobDefaults {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** The image's User, "name", "uid", "name:group" or "uid:gid"; absent when it names none. */
  user?: string;
}

const USER = /^[^:\0\s]{1,256}(:[^:\0\s]{1,256})?$/;

/** Merges what the job asks for with what the image says. `argv` empty means "the image's default command". */
export function jobDefaults(
  config: ImageConfig,
  request: { argv: string[]; env?: Record<string, string>; cwd?: string },
): JobDefaults {
  const c = config.config ?? {};
  const env: Record<string, string> = {};
  for (const pair of c.Env ?? []) {
    const eq = pair.indexOf('=');
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const argv = [...(c.Entrypoint ?? []), ...(request.argv.length ? request.argv : (c.Cmd ?? []))];
  if (argv.length === 0) throw new LidError('invalid_spec', 'the image has no default command: give one after --');
  const user = c.User || undefined;
  if (user !== undefined && !USER.test(user))
    throw new LidError(
      'invalid_image',
      `the image's User ${JSON.stringify(user)} is not NAME, UID, NAME:GROUP or UID:GID`,
    );
  const cwd = request.cwd ?? (c.WorkingDir || '/');
  return { argv, env: { ...env, ...request.env }, cwd, ...(user ? { user } : {}) };
}
