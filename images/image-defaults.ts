// An image's config becomes a job's defaults (OCI image-spec "config" semantics): Env is the base environment the
// job's own variables override; Entrypoint is always run, followed by the job's arguments or else Cmd; WorkingDir
// is the starting directory; User is the identity -- except that jobs never run as root: an image that names root
// (or nobody at all) runs as the unprivileged default. Names in User are looked up in the image's /etc/passwd and
// /etc/group, top layer first.
import fs from 'node:fs';
import path from 'node:path';
import { LidError } from '../common/errors.js';
import type { ImageConfig } from './oci.js';

export const UNPRIVILEGED_ID = 65534;

export interface JobDefaults {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
}

function lookupId(
  layerDirs: string[],
  file: 'passwd' | 'group',
  name: string,
): { id: number; gid?: number } | undefined {
  for (const dir of [...layerDirs].reverse()) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, 'etc', file), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const fields = line.split(':');
      if (fields[0] === name && fields[2] !== undefined)
        return { id: Number(fields[2]), gid: fields[3] ? Number(fields[3]) : undefined };
    }
    return undefined; // the topmost layer with the file decides
  }
  return undefined;
}

function resolveUser(user: string | undefined, layerDirs: string[]): { uid: number; gid: number } {
  if (!user || user === 'root' || user === '0' || user.startsWith('0:') || user.startsWith('root:')) {
    return { uid: UNPRIVILEGED_ID, gid: UNPRIVILEGED_ID };
  }
  const [u = '', g] = user.split(':');
  const named = /^\d+$/.test(u) ? undefined : lookupId(layerDirs, 'passwd', u);
  if (!/^\d+$/.test(u) && !named)
    throw new LidError('invalid_image', `the image's User "${user}" is not in its /etc/passwd`);
  const uid = named ? named.id : Number(u);
  let gid = named?.gid ?? uid;
  if (g !== undefined) {
    const group = /^\d+$/.test(g) ? { id: Number(g) } : lookupId(layerDirs, 'group', g);
    if (!group) throw new LidError('invalid_image', `the image's group "${g}" is not in its /etc/group`);
    gid = group.id;
  }
  return uid === 0 || gid === 0 ? { uid: UNPRIVILEGED_ID, gid: UNPRIVILEGED_ID } : { uid, gid };
}

/** Merges what the job asks for with what the image says. `argv` empty means "the image's default command". */
export function jobDefaults(
  config: ImageConfig,
  layerDirs: string[],
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
  return {
    argv,
    env: { ...env, ...request.env },
    cwd: request.cwd ?? (c.WorkingDir || '/'),
    ...resolveUser(c.User, layerDirs),
  };
}
