import { describe, expect, it } from 'vitest';
import { normalizeName, parseReference } from '../common/image-reference.js';

describe('image references', () => {
  it('normalises names so that python and python:latest are one image', () => {
    expect(normalizeName('python')).toBe('python:latest');
    expect(normalizeName('python:3.11')).toBe('python:3.11');
    expect(normalizeName('127.0.0.1:5000/team/app:1.0')).toBe('127.0.0.1:5000/team/app:1.0');
    expect(normalizeName('localhost/app')).toBe('localhost/app:latest');
    expect(normalizeName('docker.io/library/python:3')).toBe('python:3');
    expect(normalizeName('docker.io/team/app')).toBe('team/app:latest');
  });

  it('reads registries, tags and digests', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseReference(`registry.example:443/x/y@${digest}`)).toEqual({
      registry: 'registry.example:443',
      repository: 'x/y',
      tag: undefined,
      digest,
    });
    expect(parseReference('team/app:v2')).toEqual({
      registry: undefined,
      repository: 'team/app',
      tag: 'v2',
      digest: undefined,
    });
  });

  it('refuses what is not an image name, saying why', () => {
    expect(() => parseReference('Python')).toThrow(/lowercase/);
    expect(() => parseReference('app:bad tag')).toThrow(/tag/);
    expect(() => parseReference('app@sha256:123')).toThrow(/digest/);
    expect(() => parseReference('')).toThrow(/not an image name/);
  });
});
