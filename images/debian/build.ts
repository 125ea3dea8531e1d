// Builds an OCI image layout from a recipe: apt resolves and downloads the packages (resolve.ts), their files are
// unpacked without maintainer scripts into a usrmerged staging root (extract-deb.ts), the recipe's links and a few
// generated files are added, and the root becomes ONE reproducible layer (layer-tar.ts) in an OCI layout
// (oci-layout.ts). One layer is enough: the packages are installed together and nothing shares a base.
//
// Everything is written in a temporary directory beside outDir and renamed into place at the end, so a crash never
// leaves half an image at outDir. The same recipe with the same package versions gives the same manifest digest.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LidError } from '../../common/errors.js';
import { extractDeb } from './extract-deb.js';
import { writeLayer } from './layer-tar.js';
import { MEDIA_TYPES, platformOf, prepareLayout, writeOciLayout } from './oci-layout.js';
import { parseRecipe, type Recipe } from './recipe.js';
import { debianArchitecture, type Progress, resolvePackages } from './resolve.js';
import { StagingRoot } from './staging-root.js';

export type { Progress } from './resolve.js';

export interface BuildOptions {
  /** Where the OCI image layout goes; created, must not exist. */
  outDir: string;
  /** The .deb cache, reused across builds (see resolve.ts). */
  cacheDir: string;
  /** Reports long steps (resolve, download, unpack, layer); done/total when they are countable. */
  onProgress?: Progress;
}

export interface BuildResult {
  manifestDigest: string;
  layers: number;
  /** Every package in the image (the recipe's and their dependencies), sorted by name, with its .deb's sha256. */
  packages: { name: string; version: string; sha256: string }[];
}

/**
 * Accounts a job may run as, since software asks for its user's name and home (Python's getpass, a shell's ~).
 * Debian creates these in maintainer scripts, which do not run here; 65534 is the runtime's default uid/gid.
 */
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\n';

const BUSYBOX = '/usr/bin/busybox';

/**
 * Links each busybox applet to the binary. Asks the packaged busybox itself (`--list-full`, run on the building
 * host: busybox-static needs no loader or libraries), so the links match the packaged version.
 */
async function linkBusyboxApplets(root: StagingRoot): Promise<void> {
  const binary = root.hostPath(root.resolve(BUSYBOX, true));
  if (!fs.existsSync(binary))
    throw new LidError('invalid_spec', `busyboxApplets: the recipe's packages do not provide ${BUSYBOX}`);
  const { stdout } = await promisify(execFile)(binary, ['--list-full'], { env: {}, timeout: 10_000 });
  for (const applet of stdout.split('\n').filter(Boolean).sort()) {
    const at = `/${applet}`;
    if (fs.lstatSync(root.hostPath(root.resolve(at)), { throwIfNoEntry: false })) continue; // a package's own wins
    root.symlink(at, BUSYBOX);
  }
}

/** What a recipe adds beyond the packages' files: accounts, /tmp and /root, applet links, its own links. */
async function addRecipeFiles(root: StagingRoot, recipe: Recipe): Promise<void> {
  root.directory('/etc', 0o755);
  root.writeFile('/etc/passwd', PASSWD);
  root.writeFile('/etc/group', GROUP);
  root.directory('/tmp', 0o1777);
  root.directory('/root', 0o700);
  if (recipe.busyboxApplets) await linkBusyboxApplets(root);
  for (const [at, target] of Object.entries(recipe.links ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    root.symlink(at, target);
  }
}

/**
 * Builds `recipe` into a new OCI image layout at opts.outDir and returns its manifest digest and package list.
 * Fails with a LidError: 'invalid_spec' (bad recipe, outDir exists), 'not_found' (a package apt does not know),
 * 'setup_failed' (apt or dpkg-deb failed; the message ends with their stderr), 'unsupported' (no apt on this host).
 */
export async function buildRecipeImage(recipeInput: Recipe, opts: BuildOptions): Promise<BuildResult> {
  const recipe = parseRecipe(recipeInput, `recipe ${JSON.stringify(recipeInput.name)}`);
  const progress = opts.onProgress ?? (() => {});
  const outDir = path.resolve(opts.outDir);
  if (fs.existsSync(outDir)) throw new LidError('invalid_spec', `outDir ${outDir} already exists`);
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  const work = fs.mkdtempSync(path.join(path.dirname(outDir), `${path.basename(outDir)}.building-`));
  try {
    const platform = platformOf(await debianArchitecture()); // before downloading: an unknown one fails fast
    const debs = await resolvePackages(recipe.packages, { cacheDir: opts.cacheDir, onProgress: progress });

    const root = StagingRoot.create(path.join(work, 'rootfs'));
    for (const [i, deb] of debs.entries()) {
      progress('unpacking packages', i, debs.length);
      await extractDeb(deb.file, root);
    }
    progress('unpacking packages', debs.length, debs.length);
    await addRecipeFiles(root, recipe);

    const layoutDir = path.join(work, 'layout');
    const layer = await writeLayer(root, prepareLayout(layoutDir), progress);
    const packages = debs.map(({ name, version, sha256 }) => ({ name, version, sha256 }));
    const manifest = writeOciLayout(layoutDir, {
      recipe,
      platform,
      layer: { ...layer, mediaType: MEDIA_TYPES.layerGzip },
      packages,
    });
    if (fs.existsSync(outDir)) throw new LidError('invalid_spec', `outDir ${outDir} appeared during the build`);
    fs.renameSync(layoutDir, outDir);
    return { manifestDigest: manifest.digest, layers: 1, packages };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
