// The package set of a recipe: apt computes the dependency closure against an EMPTY dpkg status (so nothing installed
// on the building host is taken as present) and downloads the .debs into a cache that later builds reuse. apt is
// pointed at private state (status, logs, preferences) and never touches the host's; it reads only the host's
// sources and package lists, so `apt-get update` on the host decides which versions a build gets.
//
// Our own preferences replace the host's: any version from an archive whose Release says "Origin: Debian" (the
// archive and its security and updates suites, on any mirror) outranks third-party repositories, so a host that has,
// say, NodeSource configured still builds the node recipe from Debian's nodejs.
//
// apt checks only the size of a .deb already in its cache, so every cached file is checked against the SHA256 of
// apt's (signature-verified) package lists before use; a bad one is deleted and downloaded again.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { LidError } from '../../common/errors.js';
import { withDirLock as withLock } from '../../common/dir-lock.js';

export type Progress = (msg: string, done?: number, total?: number) => void;

export interface DebPackage {
  name: string;
  version: string;
  /** The package's Debian architecture: the host's, or "all". */
  arch: string;
  /** sha256 (hex) of the .deb, as apt's package lists give it and as checked on the file. */
  sha256: string;
  size: number;
  /** The .deb in the cache. */
  file: string;
}

export interface ResolveOptions {
  /** Holds archives/ (the .debs, reused across builds); created if missing. */
  cacheDir: string;
  onProgress?: Progress;
}

const PREFERENCES = 'Package: *\nPin: release o=Debian\nPin-Priority: 990\n';

function aptOptions(state: string, archives: string): string[] {
  const settings: [string, string][] = [
    ['Dir::State::status', path.join(state, 'status')],
    ['Dir::State::extended_states', path.join(state, 'extended_states')],
    ['Dir::Log', path.join(state, 'log')],
    ['Dir::Etc::preferences', path.join(state, 'preferences')],
    ['Dir::Etc::preferencesparts', path.join(state, 'preferences.d')],
    ['Dir::Cache::archives', archives],
    // apt would otherwise write its binary cache of the package lists, built for our empty status, to the host's.
    ['Dir::Cache::pkgcache', ''],
    ['Dir::Cache::srcpkgcache', ''],
    // The host's dpkg lock guards the host's status, which we do not use; the cache has its own lock (below).
    ['Debug::NoLocking', 'true'],
    ['APT::Install-Recommends', 'false'],
    ['APT::Install-Suggests', 'false'],
    // Where the mirrors cannot be reached (a network namespace with a route that leads nowhere), fail in seconds,
    // not after apt's default retries with their back-off; a build that failed is simply run again.
    ['Acquire::http::Timeout', '15'],
    ['Acquire::https::Timeout', '15'],
    ['Acquire::Retries', '1'],
  ];
  return settings.flatMap(([k, v]) => ['-o', `${k}=${v}`]);
}

function aptError(command: string, code: number | null, stderr: string): LidError {
  const missing = /Unable to locate package (\S+)/.exec(stderr);
  if (missing) {
    return new LidError(
      'not_found',
      `Debian package "${missing[1]}" is not in apt's package lists (if it exists in Debian, run apt-get update)`,
    );
  }
  const version = /Version '([^']+)' for '([^']+)' was not found/.exec(stderr);
  if (version) {
    return new LidError('not_found', `Debian package "${version[2]}" has no version ${version[1]} in apt's lists`);
  }
  const tail = stderr.trim().split('\n').slice(-12).join('\n');
  return new LidError('setup_failed', `${command} failed (exit ${code}): ${tail || '(no output)'}`, { stderr: tail });
}

/** Runs an apt tool with C messages (they are parsed); resolves with its stdout, rejects with a LidError. */
/** apt processes running for this process's builds: a process told to stop ends them (stopAptRuns). */
const aptRuns = new Set<ChildProcess>();

/** Ends every apt process this process started (a `lid up` interrupted while it builds images leaves none). */
export function stopAptRuns(): void {
  for (const child of aptRuns) child.kill('SIGTERM');
}

function runApt(tool: string, args: string[], onLine?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    // The host's environment passes through: apt honours proxy variables the host may need to reach its mirrors.
    const child = spawn(tool, args, { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    aptRuns.add(child);
    child.once('exit', () => aptRuns.delete(child));
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (!onLine) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      lines.forEach(onLine);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new LidError('unsupported', `${tool} was not found: building images from recipes needs Debian's apt`)
          : new LidError('setup_failed', `cannot run ${tool}: ${e.message}`),
      ),
    );
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(aptError(`${tool} ${args[0]}`, code, stderr))));
  });
}

/** The closure apt would install on an empty system, from its simulation ("Inst NAME (VERSION ... [ARCH])"). */
export function parseSimulation(stdout: string): { name: string; version: string; arch: string }[] {
  const out = [];
  for (const line of stdout.split('\n')) {
    const m = /^Inst (\S+) (?:\[\S+\] )?\((\S+) [^)]*\[([^\]]+)\]\)/.exec(line);
    if (m) out.push({ name: m[1]!, version: m[2]!, arch: m[3]! });
  }
  return out;
}

/** SHA256 and Size of each package record in `apt-cache show` output, keyed NAME_VERSION_ARCH. */
export function parseRecords(stdout: string): Map<string, { sha256: string; size: number }> {
  const records = new Map<string, { sha256: string; size: number }>();
  for (const block of stdout.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: (.+)$`, 'm').exec(block)?.[1]?.trim();
    const [name, version, arch, sha256, size] = ['Package', 'Version', 'Architecture', 'SHA256', 'Size'].map(field);
    if (name && version && arch && sha256 && size) records.set(`${name}_${version}_${arch}`, { sha256, size: +size });
  }
  return records;
}

/** The file name apt gives a downloaded .deb (it escapes the epoch's ":" as %3a). */
export function archiveFileName(p: { name: string; version: string; arch: string }): string {
  return `${p.name}_${p.version.replaceAll(':', '%3a')}_${p.arch}.deb`;
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/** True when `file` exists and has the expected content; a file that does not is deleted. */
async function verifiedInCache(file: string, sha256: string): Promise<boolean> {
  if (!fs.existsSync(file)) return false;
  if ((await sha256File(file)) === sha256) return true;
  fs.rmSync(file, { force: true });
  return false;
}

/**
 * Resolves `packages` (apt-get syntax: NAME or NAME=VERSION) to their dependency closure and makes sure every .deb
 * of it is in `cacheDir/archives`, verified. Returns the closure sorted by name.
 */
export async function resolvePackages(packages: string[], opts: ResolveOptions): Promise<DebPackage[]> {
  const progress = opts.onProgress ?? (() => {});
  const archives = path.join(opts.cacheDir, 'archives');
  fs.mkdirSync(path.join(archives, 'partial'), { recursive: true });
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-apt-'));
  try {
    fs.writeFileSync(path.join(state, 'status'), ''); // nothing is installed
    fs.writeFileSync(path.join(state, 'preferences'), PREFERENCES);
    fs.mkdirSync(path.join(state, 'preferences.d'));
    fs.mkdirSync(path.join(state, 'log'));
    const options = aptOptions(state, archives);

    progress(`resolving ${packages.join(' ')}`);
    const closure = parseSimulation(await runApt('apt-get', ['install', '--simulate', '-q', ...options, ...packages]));
    if (closure.length === 0)
      throw new LidError('internal', `apt-get resolved ${packages.join(' ')} to no packages at all`);
    const pins = closure.map((p) => `${p.name}=${p.version}`);
    const records = parseRecords(await runApt('apt-cache', ['show', ...options, ...pins]));
    const resolved: DebPackage[] = closure.map((p) => {
      const record = records.get(`${p.name}_${p.version}_${p.arch}`);
      if (!record) throw new LidError('setup_failed', `apt-cache has no SHA256 for ${p.name} ${p.version} ${p.arch}`);
      return { ...p, ...record, file: path.join(archives, archiveFileName(p)) };
    });

    await withLock(`${archives}.lock`, async () => {
      const missing: DebPackage[] = [];
      for (const p of resolved) if (!(await verifiedInCache(p.file, p.sha256))) missing.push(p);
      if (missing.length > 0) {
        let done = 0;
        progress('downloading packages', 0, missing.length);
        // Every package pinned to the resolved version: the lists may change between the two apt calls.
        await runApt('apt-get', ['install', '--download-only', '-y', '-q', ...options, ...pins], (line) => {
          if (line.startsWith('Get:'))
            progress('downloading packages', Math.min(++done, missing.length), missing.length);
        });
        for (const p of missing) {
          if (!(await verifiedInCache(p.file, p.sha256)))
            throw new LidError('setup_failed', `apt-get did not leave a good ${path.basename(p.file)} in ${archives}`);
        }
      }
    });
    return resolved.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    fs.rmSync(state, { recursive: true, force: true });
  }
}

/** The host's Debian architecture (what apt downloads for), e.g. amd64. */
export async function debianArchitecture(): Promise<string> {
  return (await runApt('dpkg', ['--print-architecture'])).trim();
}
