import { describe, expect, it } from 'vitest';
import {
  compileNetwork,
  domainMatches,
  NetworkSchema,
  networkWithin,
  parseAllowEntry,
  parseNetworkFlag,
} from './network-policy.js';

describe('network policy', () => {
  it('parses domains, wildcards, addresses and CIDRs, with optional ports', () => {
    expect(parseAllowEntry('PyPI.org')).toEqual({
      kind: 'domain',
      name: 'pypi.org',
      wildcard: false,
      ports: [1, 65535],
    });
    expect(parseAllowEntry('*.example.com:443')).toEqual({
      kind: 'domain',
      name: 'example.com',
      wildcard: true,
      ports: [443, 443],
    });
    expect(parseAllowEntry('203.0.113.7/24')).toEqual({
      kind: 'cidr',
      address: '203.0.113.0',
      prefix: 24,
      ports: [1, 65535],
    });
    expect(parseAllowEntry('198.51.100.7:8000-8100')).toEqual({
      kind: 'cidr',
      address: '198.51.100.7',
      prefix: 32,
      ports: [8000, 8100],
    });
  });

  it('refuses what it cannot enforce, saying what to write instead', () => {
    expect(() => parseAllowEntry('2001:db8::1')).toThrow(/IPv6 is off/);
    expect(() => parseAllowEntry('[2001:db8::1]:443')).toThrow(/IPv6 is off/);
    expect(() => parseAllowEntry('pypi.org:0')).toThrow(/port must be 1-65535/);
    expect(() => parseAllowEntry('pypi.org:90-80')).toThrow(/port must be/);
    expect(() => parseAllowEntry('10.0.0.0/33')).toThrow(/prefix after \/ must be 0-32/);
    expect(() => parseAllowEntry('localhost')).toThrow(/not a domain/);
    expect(() => parseAllowEntry('exa mple.com')).toThrow(/not a domain/);
    expect(() => parseAllowEntry('pypi.org/24')).toThrow(/only an IPv4 address takes a \/prefix/);
  });

  it('matches names the way the resolver will', () => {
    const exact = parseAllowEntry('pypi.org');
    const wild = parseAllowEntry('*.example.com');
    if (exact.kind !== 'domain' || wild.kind !== 'domain') throw new Error('domains expected');
    expect(domainMatches(exact, 'PYPI.org.')).toBe(true);
    expect(domainMatches(exact, 'files.pypi.org')).toBe(false);
    expect(domainMatches(wild, 'a.b.example.com')).toBe(true);
    expect(domainMatches(wild, 'example.com')).toBe(false);
    expect(domainMatches(wild, 'badexample.com')).toBe(false);
  });

  it('is none by default, and names the bad entry of an allowlist', () => {
    expect(NetworkSchema.parse(undefined)).toBe('none');
    const bad = NetworkSchema.safeParse({ allow: ['pypi.org', 'not a host'] });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')).toMatch(
      /^allow\.1: "not a host"/m,
    );
    expect(NetworkSchema.safeParse({ allow: [] }).success).toBe(false);
    expect(compileNetwork({ allow: ['pypi.org', '10.1.0.0/16:5432'] })).toEqual({
      kind: 'allow',
      rules: [parseAllowEntry('pypi.org'), parseAllowEntry('10.1.0.0/16:5432')],
    });
  });

  it('holds a request to its tenant’s ceiling: none < allowlist < internet', () => {
    expect(networkWithin('none', 'none')).toBe(true);
    expect(networkWithin({ allow: ['pypi.org'] }, 'none')).toBe(false);
    expect(networkWithin({ allow: ['pypi.org'] }, 'allowlist')).toBe(true);
    expect(networkWithin('internet', 'allowlist')).toBe(false);
    expect(networkWithin('internet', 'internet')).toBe(true);
  });

  it('reads the CLI flag', () => {
    expect(parseNetworkFlag('none')).toBe('none');
    expect(parseNetworkFlag('allow=pypi.org, *.example.com:443')).toEqual({ allow: ['pypi.org', '*.example.com:443'] });
    expect(() => parseNetworkFlag('allow=')).toThrow(/at least one entry/);
    expect(() => parseNetworkFlag('all')).toThrow(/none, internet or allow=LIST/);
  });
});
