// Image names as people type them: "python", "python:3.11", "localhost:5000/team/app@sha256:...". Normalised so
// that "python" and "python:latest" are the same image in the store. Pure.
import { LidError } from './errors.js';

export interface ImageReference {
  /** Registry host (with port), or undefined for a local name */
  registry?: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function parseReference(text: string): ImageReference {
  const bad = (why: string) => new LidError('invalid_spec', `"${text}" is not an image name: ${why}`);
  let rest = text.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('the digest after @ must be sha256:<64 hex digits>');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`the tag "${tag}" may hold letters, digits, _ . - (at most 128)`);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) registry = parts.shift();
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad('use lowercase letters, digits and separators (. _ -), with / between path components');
  }
  return { registry, repository: parts.join('/'), tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/**
 * The store's key for an image: "[registry/]repository:tag" or "...@digest". Docker Hub names take their familiar
 * form, as docker save writes them: "docker.io/library/python:3" is "python:3".
 */
export function formatReference(ref: ImageReference): string {
  const hub = ref.registry === 'docker.io' || ref.registry === 'index.docker.io';
  const repository = hub ? ref.repository.replace(/^library\//, '') : ref.repository;
  const name = ref.registry && !hub ? `${ref.registry}/${repository}` : repository;
  return ref.digest ? `${name}@${ref.digest}` : `${name}:${ref.tag ?? 'latest'}`;
}

export function normalizeName(text: string): string {
  return formatReference(parseReference(text));
}
