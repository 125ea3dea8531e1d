// How an import names its source and picks images out of it, the way skopeo's transports do: PATH, PATH:REF,
// oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF]. REF chooses one image: in an OCI layout, the entry
// whose org.opencontainers.image.ref.name annotation is REF (what `skopeo copy ... oci:DIR:REF` writes); in a
// docker-archive, the image whose RepoTags hold REF. A layout holding several images needs a REF, and the error
// lists the ones it has, since guessing would import the wrong one.
import fs from 'node:fs';
import { LidError } from '../common/errors.js';
import type { Descriptor } from './oci.js';
import { normalizeName } from '../common/image-reference.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';

const TRANSPORTS = ['oci:', 'oci-archive:', 'docker-archive:'];

export interface ImportSource {
  /** The directory or archive file. */
  path: string;
  /** The image to take from it, when the source named one. */
  ref?: string;
}

/**
 * Splits "PATH[:REF]" after an optional transport. A path that exists as written is taken whole (a path may hold a
 * colon); otherwise the path ends at the first colon where what precedes it exists, as skopeo splits it. A source
 * that matches nothing is returned whole, to be reported as missing.
 */
export function parseImportSource(text: string): ImportSource {
  if (fs.existsSync(text)) return { path: text };
  const transport = TRANSPORTS.find((t) => text.startsWith(t));
  const rest = transport ? text.slice(transport.length) : text;
  if (fs.existsSync(rest)) return { path: rest };
  for (let colon = rest.indexOf(':'); colon > 0; colon = rest.indexOf(':', colon + 1)) {
    if (fs.existsSync(rest.slice(0, colon))) return { path: rest.slice(0, colon), ref: rest.slice(colon + 1) };
  }
  return { path: rest };
}

/** Do two texts name the same image? An annotation may be anything, so one that is no image name matches nothing. */
function sameName(a: string | undefined, b: string): boolean {
  try {
    return a !== undefined && normalizeName(a) === normalizeName(b);
  } catch {
    return false;
  }
}

/** A name as the store would write it (docker.io/library/ folded away), or as given when it is no image name. */
function shortName(text: string): string {
  try {
    return normalizeName(text);
  } catch {
    return text;
  }
}

const refOf = (entry: Descriptor) => entry.annotations?.[REF_NAME];
const listed = (entries: Descriptor[]) =>
  entries.map((e) => refOf(e) ?? `(no ref: ${e.digest.slice(0, 19)}…)`).join(', ');

/**
 * The entries of a layout's index.json to import. `label` is the source as the user gave it, for messages.
 * `--name` alone still picks the entry whose annotation is that name (the spelling before REF existed).
 */
export function chooseLayoutEntries(
  entries: Descriptor[],
  label: string,
  ref: string | undefined,
  name: string | undefined,
): Descriptor[] {
  if (ref !== undefined) {
    const chosen = entries.find((e) => refOf(e) === ref);
    if (!chosen)
      throw new LidError('not_found', `${label} holds no image with ref ${ref} (it holds: ${listed(entries)})`);
    return [chosen];
  }
  if (entries.length <= 1) return entries;
  if (name) {
    const wanted = entries.filter((e) => sameName(refOf(e), name));
    if (wanted.length === 1) return wanted;
  }
  const first = entries.map(refOf).find((r) => r !== undefined) ?? 'REF';
  throw new LidError(
    'invalid_spec',
    `${label} holds ${entries.length} images (${listed(entries)}): choose one with ${label}:REF, e.g. ${label}:${first}`,
  );
}

/** The images of a docker-archive to import: those whose RepoTags hold `ref`, or all of them. */
export function chooseArchiveEntries<T extends { RepoTags?: string[] | null }>(
  entries: T[],
  label: string,
  ref: string | undefined,
): T[] {
  if (ref === undefined) return entries;
  const chosen = entries.filter((e) => (e.RepoTags ?? []).some((t) => sameName(t, ref)));
  if (chosen.length === 0) {
    const held = entries.flatMap((e) => (e.RepoTags ?? []).map(shortName)).join(', ') || 'only untagged images';
    throw new LidError('not_found', `${label} holds no image with ref ${ref} (it holds: ${held})`);
  }
  return chosen.slice(0, 1);
}
