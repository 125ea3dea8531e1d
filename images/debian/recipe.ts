// Recipes: what an image built from Debian packages contains (images/recipes/<name>.json), validated with zod so that
// every mistake names its field. A recipe says which packages to install (apt adds their dependencies), the image
// config (the subset of the OCI config a job runner uses), and the few symlinks that maintainer scripts or
// update-alternatives would have made on a real system, since the builder never runs those scripts.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { LidError } from '../../common/errors.js';

const RECIPE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** An absolute, normal path inside the image (never "/" itself: links and files name an entry). */
const ImagePath = z
  .string()
  .refine((p) => p.startsWith('/') && p !== '/', 'must be an absolute path inside the image (start with /)')
  .refine((p) => !p.includes('\0'), 'must not contain NUL bytes')
  .refine((p) => path.posix.normalize(p) === p && !p.endsWith('/'), 'must be normal: no "..", "//", "/./" or final /');

/** A package as apt-get takes it: a Debian package name, optionally pinned to one version with =VERSION. */
const PackageSpec = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/,
    'must be a Debian package name, optionally with =VERSION (lowercase letters, digits, + - .)',
  );

export const RecipeSchema = z.strictObject({
  name: z.string().regex(RECIPE_NAME, 'must be 1-64 of a-z 0-9 . _ - starting with a letter or digit'),
  description: z.string().min(1, 'must say what the image is for'),
  packages: z
    .array(PackageSpec)
    .min(1, 'must name at least one package')
    .refine((p) => new Set(p).size === p.length, 'must not name a package twice'),
  config: z.strictObject({
    Env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'must be NAME=VALUE')).optional(),
    Entrypoint: z.array(z.string()).min(1, 'must not be empty (leave it out instead)').optional(),
    Cmd: z.array(z.string()).optional(),
    WorkingDir: ImagePath.optional(),
    User: z.string().min(1).optional(),
  }),
  /** Extra symlinks, image path -> link target (as `ln -s TARGET PATH` would make them). */
  links: z.record(ImagePath, z.string().min(1, 'must be a non-empty link target')).optional(),
  /**
   * Link every applet of the image's /usr/bin/busybox (as its own `--list-full` reports them) to it, unless a
   * package already provides that path. Asked of the packaged binary, so the links match the packaged version and
   * not whatever busybox the building host has.
   */
  busyboxApplets: z.boolean().optional(),
});
export type Recipe = z.output<typeof RecipeSchema>;

/** Validates a parsed recipe; `source` (a file name) leads the error message. */
export function parseRecipe(value: unknown, source: string): Recipe {
  const parsed = RecipeSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => {
    // zod reports a bad record key as "Invalid key in record"; the key's own issue says what is wrong with it.
    const inner = i.code === 'invalid_key' ? i.issues[0] : undefined;
    return { path: i.path.join('.'), message: inner?.message ?? i.message };
  });
  throw new LidError(
    'invalid_spec',
    `invalid recipe ${source}: ${issues.map((i) => `${i.path || '(recipe)'}: ${i.message}`).join('; ')}`,
    { issues },
  );
}

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new LidError('internal', 'cannot find the Lid package root');
    dir = up;
  }
  return dir;
}

/** Where the shipped recipes live: the sources' images/recipes, also when running compiled code from dist/. */
export function recipesDir(): string {
  return path.join(packageRoot(), 'images', 'recipes');
}

/** The names of the recipes in `dir`, sorted. */
export function listRecipes(dir = recipesDir()): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** Reads and validates recipe `name` from `dir`; an unknown name is 'not_found' and lists the known ones. */
export function loadRecipe(name: string, dir = recipesDir()): Recipe {
  const known = listRecipes(dir);
  // Checking against the listing also keeps a name like "../x" from reaching the file system.
  if (!known.includes(name)) {
    throw new LidError('not_found', `no recipe named ${JSON.stringify(name)}; known recipes: ${known.join(', ')}`, {
      known,
    });
  }
  const file = path.join(dir, `${name}.json`);
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LidError('invalid_spec', `recipe ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const recipe = parseRecipe(value, file);
  if (recipe.name !== name)
    throw new LidError('invalid_spec', `invalid recipe ${file}: name: must be ${JSON.stringify(name)}, as the file`);
  return recipe;
}
