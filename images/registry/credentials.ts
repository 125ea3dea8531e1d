// Registry credentials: the --creds USER:PASS flag, and the auth files that `skopeo/podman login` (containers'
// auth.json) and `docker login` (~/.docker/config.json) write, so that a user who has logged in once with any of
// those tools can pull with Lid without repeating the password. Only static entries are read: credential helpers
// (credsStore, credHelpers) and identity tokens would mean running external programs, which Lid does not do.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LidError } from '../../common/errors.js';

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from ("--creds", or an auth file's path), so an error can say which ones were refused. */
  source?: string;
}

export interface AuthFileOptions {
  /** The environment to read REGISTRY_AUTH_FILE and XDG_RUNTIME_DIR from (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The home directory holding ~/.config/containers and ~/.docker (default: os.homedir()). */
  homedir?: string;
}

// Docker Hub answers under several names, and `docker login` files it under its v1 index URL.
const DOCKER_HUB = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** True for any of the names Docker Hub answers to. */
export function isDockerHub(host: string): boolean {
  return DOCKER_HUB.includes(host.toLowerCase());
}

/** Parses the value of --creds; the password may itself contain colons. */
export function parseCredsFlag(text: string): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0) {
    throw new LidError('invalid_spec', '--creds must be USER:PASS (a user name, a colon, then the password)');
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1), source: '--creds' };
}

/** The auth files to look in, most specific first, as containers/image and Docker define them. */
export function authFilePaths(opts: AuthFileOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const home = opts.homedir ?? os.homedir();
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(path.join(home, '.config', 'containers', 'auth.json'));
  paths.push(path.join(home, '.docker', 'config.json'));
  return paths;
}

/**
 * Credentials for a registry host ("host" or "host:port"): the explicit ones when given, else the first auth file
 * with an entry for that host, else undefined (anonymous).
 */
export function findCredentials(
  host: string,
  opts: AuthFileOptions & { explicit?: Credentials } = {},
): Credentials | undefined {
  if (opts.explicit) return opts.explicit;
  const wanted = DOCKER_HUB.includes(host) ? DOCKER_HUB : [host];
  for (const file of authFilePaths(opts)) {
    const found = readAuthFile(file, wanted);
    if (found) return found;
  }
  return undefined;
}

function readAuthFile(file: string, hosts: string[]): Credentials | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // not logged in with that tool: normal
    throw new LidError('invalid_spec', `cannot read the registry auth file ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LidError('invalid_spec', `the registry auth file ${file} is not valid JSON: fix it or remove it`);
  }
  const auths = isObject(parsed) && isObject(parsed.auths) ? parsed.auths : {};
  for (const [key, entry] of Object.entries(auths)) {
    const keyHost = hostOfKey(key);
    if (keyHost === undefined || !hosts.includes(keyHost) || !isObject(entry)) continue;
    const creds = entryCredentials(entry, file, key);
    if (creds) return creds;
  }
  return undefined;
}

/**
 * The registry host an auths key names. Docker writes URLs ("https://index.docker.io/v1/"), whose path means
 * nothing; containers' auth.json may scope a key to a namespace ("quay.io/team"), which must not be mistaken for
 * the whole host, so such keys are skipped (undefined).
 */
function hostOfKey(key: string): string | undefined {
  const url = /^https?:\/\/([^/]+)/.exec(key);
  if (url) return url[1];
  return key.includes('/') ? undefined : key;
}

function entryCredentials(entry: Record<string, unknown>, file: string, key: string): Credentials | undefined {
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new LidError(
        'invalid_spec',
        `the registry auth file ${file} has a malformed "auth" for ${key} (expected base64 of USER:PASS): log in again`,
      );
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: file };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username !== '') {
    return { username: entry.username, password: entry.password, source: file };
  }
  return undefined; // e.g. only an identitytoken: not something Lid can use
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
