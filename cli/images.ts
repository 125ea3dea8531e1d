// `lid images ...`: build, import, pull, list, inspect, remove and collect garbage in the image store under
// LID_DATA_DIR. Long steps show progress on a terminal only; results go to stdout, one line each (or JSON).
// `pull` is the operator's own request, not a tenant's (images/pull-policy.ts operatorPulls): it may reach any
// address and uses the host's registry logins; the size and time caps still hold.
import { Command } from 'commander';
import type { LidConfig } from '../common/config.js';
import { isLidError } from '../common/errors.js';
import { operatorPulls } from '../images/pull-policy.js';
import { type Credentials, parseCredsFlag } from '../images/registry/credentials.js';
import { asOption, asSize } from './option-parsers.js';
import { terminalProgress } from './progress.js';

const parseCreds = asOption((value: string): Credentials => parseCredsFlag(value));

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** One line per image on stdout (scripts read it); a note on stderr when the store already had it. */
function printImage(what: string, image: { name: string; manifestDigest: string; unchanged?: boolean }): void {
  process.stdout.write(`${image.name} ${image.manifestDigest}\n`);
  if (image.unchanged) process.stderr.write(`lid images ${what}: ${image.name} is already in the store, unchanged\n`);
}

/** Runs one subcommand: LidErrors become "lid images: message" and exit 1; bugs keep their stack. */
async function report(
  what: string,
  body: (progress: ReturnType<typeof terminalProgress>) => Promise<void>,
): Promise<void> {
  const progress = terminalProgress();
  try {
    await body(progress);
  } catch (e) {
    if (!isLidError(e)) throw e;
    process.stderr.write(`lid images ${what}: ${e.message}\n`);
    process.exitCode = 1;
  } finally {
    progress.done();
  }
}

export function imagesCommand(config: LidConfig): Command {
  // The store and each subcommand's code are loaded when a subcommand runs, not for --help (main.ts says why).
  const open = async () => (await import('../images/store.js')).ImageStore.open(config.dataDir);
  const catalog = () => import('../images/catalog.js');
  const images = new Command('images').description(
    `build, import, pull and manage images (store: ${config.dataDir}/images)`,
  );

  images
    .command('build')
    .description('build an image from a recipe in images/recipes/ (Debian packages)')
    .argument('<name>', 'recipe name, e.g. python, node, bash, busybox')
    .action((name: string) =>
      report('build', async (p) => {
        const { buildImage } = await import('../images/build-image.js');
        const image = await buildImage(await open(), name, p.report);
        p.done();
        printImage('build', image);
      }),
    );

  images
    .command('import')
    .description('import an OCI image layout (directory or tar) or a docker-archive (docker save)')
    .argument('<source>', 'FILE or DIR; FILE:REF or DIR:REF takes the one image whose ref is REF (as skopeo)')
    .option('--name <name:tag>', 'name to give the image (needed when the source does not name it)')
    .action((source: string, opts: { name?: string }) =>
      report('import', async (p) => {
        const { importImage } = await import('../images/import.js');
        for (const image of await importImage(await open(), source, { name: opts.name, onProgress: p.report })) {
          p.done();
          printImage('import', image);
        }
      }),
    );

  images
    .command('pull')
    .description('pull an image from an OCI distribution (v2) registry')
    .argument('<ref>', 'e.g. 127.0.0.1:5000/team/app:1.0')
    .option('--creds <user:pass>', 'registry credentials (default: from auth.json / ~/.docker/config.json)', parseCreds)
    .option('--plain-http', 'talk plain HTTP (for a registry on loopback)')
    .action((ref: string, opts: { creds?: Credentials; plainHttp?: boolean }) =>
      report('pull', async (p) => {
        const { pullImage } = await import('../images/registry/client.js');
        const image = await pullImage(ref, await open(), {
          ...operatorPulls(config, { creds: opts.creds, plainHttp: opts.plainHttp }),
          onProgress: p.report,
        });
        p.done();
        process.stdout.write(`${image.name} ${image.manifestDigest}\n`);
      }),
    );

  images
    .command('ls')
    .description('list the images in the store')
    .option('--json', 'print a JSON array')
    .action((opts: { json?: boolean }) =>
      report('ls', async () => {
        const list = (await catalog()).listImages(await open());
        if (opts.json) return void process.stdout.write(`${JSON.stringify(list)}\n`);
        const rows = list.map((i) => [
          i.name,
          i.manifestDigest.slice(7, 19),
          mib(i.size),
          String(i.layers),
          i.lastUsed ?? '-',
        ]);
        const table = [['NAME', 'DIGEST', 'SIZE', 'LAYERS', 'LAST USED'], ...rows];
        const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
        for (const row of table)
          process.stdout.write(
            `${row
              .map((cell, c) => cell.padEnd(widths[c]!))
              .join('  ')
              .trimEnd()}\n`,
          );
      }),
    );

  images
    .command('inspect')
    .description('print an image’s manifest and config as JSON')
    .argument('<name>')
    .action((name: string) =>
      report('inspect', async () => {
        process.stdout.write(`${JSON.stringify((await catalog()).inspectImage(await open(), name), null, 2)}\n`);
      }),
    );

  images
    .command('rm')
    .description('remove an image name (its data goes at the next gc)')
    .argument('<name>')
    .action((name: string) => report('rm', async () => (await catalog()).removeImage(await open(), name)));

  images
    .command('gc')
    .description('remove blobs and layers no image refers to; with --max-size, evict least recently used images')
    .option('--max-size <size>', 'keep the store under this size (e.g. 10g), never evicting images in use', asSize)
    .action((opts: { maxSize?: number }) =>
      report('gc', async () => {
        const { collectGarbage } = await import('../images/gc.js');
        const r = await collectGarbage(await open(), { maxBytes: opts.maxSize });
        process.stdout.write(
          `removed ${r.removedBlobs} blobs and ${r.removedLayers} layers, freed ${mib(r.freedBytes)}${r.evicted.length ? `; evicted ${r.evicted.join(', ')}` : ''}\n`,
        );
      }),
    );
  return images;
}
