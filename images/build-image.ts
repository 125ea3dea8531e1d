// `lid images build NAME`: a recipe from images/recipes/ becomes an OCI layout (images/debian/build.ts) in the
// store's temporary space, which is then imported like any other layout and removed.
import fs from 'node:fs';
import path from 'node:path';
import { buildRecipeImage } from './debian/build.js';
import { loadRecipe } from './debian/recipe.js';
import { type ImportedImage, importImage } from './import.js';
import type { ImageStore, Progress } from './store.js';

export async function buildImage(store: ImageStore, recipeName: string, onProgress?: Progress): Promise<ImportedImage> {
  const recipe = loadRecipe(recipeName);
  const outDir = store.tempPath(`build-${recipe.name}`);
  try {
    await buildRecipeImage(recipe, {
      outDir,
      cacheDir: path.join(store.layout.root, 'deb-cache'),
      onProgress: (msg, done, total) => onProgress?.(msg, done ?? 0, total ?? 0, 'items'),
    });
    const [image] = await importImage(store, outDir, { name: `${recipe.name}:latest` });
    return image!;
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}
