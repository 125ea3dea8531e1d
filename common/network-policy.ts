// A job's network, as the job contract states it and as the runtime enforces it (runtime/net/): none (the default:
// loopback only), internet (public addresses, as the operator's egress policy allows them), or an allowlist of
// domains (exact, or *.suffix for every subdomain), IPv4 addresses and CIDRs, each with an optional port or port
// range. IPv6 is off in networked sandboxes (they get no IPv6 address and the host drops their IPv6), so an IPv6
// entry is refused here rather than silently never matching. Pure: parsing and matching, no I/O.
import net from 'node:net';
import { z } from 'zod';

/** What a tenant may ask for, in order: each level allows the ones before it. */
export const NETWORK_LEVELS = ['none', 'allowlist', 'internet'] as const;
export type NetworkLevel = (typeof NETWORK_LEVELS)[number];

export type PortRange = readonly [number, number];
export const ALL_PORTS: PortRange = Object.freeze([1, 65535] as const);

export interface CidrRule {
  kind: 'cidr';
  /** Network address and prefix length: "203.0.113.0" and 24 (a single address is /32). */
  address: string;
  prefix: number;
  ports: PortRange;
}

export interface DomainRule {
  kind: 'domain';
  /** Lowercase, without a trailing dot. */
  name: string;
  /** "*.example.com": every name under example.com (not example.com itself). */
  wildcard: boolean;
  ports: PortRange;
}

export type AllowRule = CidrRule | DomainRule;

export type NetworkPolicy = { kind: 'none' } | { kind: 'internet' } | { kind: 'allow'; rules: AllowRule[] };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
export const MAX_ALLOW_ENTRIES = 256;

function parsePorts(text: string, entry: string): PortRange {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2] ?? m?.[1]);
  if (!m || lo < 1 || hi > 65535 || lo > hi)
    throw new RangeError(`"${entry}": the port must be 1-65535, or a range LOW-HIGH such as 8000-8100`);
  return [lo, hi];
}

/**
 * One allowlist entry: "pypi.org", "*.example.com", "203.0.113.0/24", "198.51.100.7", each optionally followed by
 * ":PORT" or ":LOW-HIGH". Throws a RangeError saying what is wrong with it.
 */
export function parseAllowEntry(entry: string): AllowRule {
  const text = entry.trim().toLowerCase();
  if (text.includes('[') || net.isIPv6(text.split('/')[0]!))
    throw new RangeError(`"${entry}": IPv6 is off in Lid sandboxes; name IPv4 addresses or domains`);
  const colon = text.lastIndexOf(':');
  const host = colon >= 0 ? text.slice(0, colon) : text;
  const ports = colon >= 0 ? parsePorts(text.slice(colon + 1), entry) : ALL_PORTS;
  const [address, prefixText] = host.split('/') as [string, string | undefined];
  if (net.isIPv4(address)) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    if (!/^\d{1,2}$/.test(prefixText ?? '32') || prefix > 32)
      throw new RangeError(`"${entry}": the prefix after / must be 0-32`);
    return { kind: 'cidr', address: networkAddress(address, prefix), prefix, ports };
  }
  if (prefixText !== undefined) throw new RangeError(`"${entry}": only an IPv4 address takes a /prefix`);
  const wildcard = host.startsWith('*.');
  const name = (wildcard ? host.slice(2) : host).replace(/\.$/, '');
  const labels = name.split('.');
  if (name.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels.at(-1)!))
    throw new RangeError(
      `"${entry}": not a domain, a *.domain, an IPv4 address or a CIDR (e.g. pypi.org, *.example.com, 203.0.113.0/24)`,
    );
  return { kind: 'domain', name, wildcard, ports };
}

/** The address with the host bits cleared: 203.0.113.7/24 is 203.0.113.0/24. */
function networkAddress(address: string, prefix: number): string {
  const n = address.split('.').reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
  const masked = prefix === 0 ? 0 : (n & (0xffffffff << (32 - prefix))) >>> 0;
  return [24, 16, 8, 0].map((s) => (masked >>> s) & 0xff).join('.');
}

/** Whether a name the sandbox asks its resolver for is one the rule allows. */
export function domainMatches(rule: DomainRule, queried: string): boolean {
  const name = queried.toLowerCase().replace(/\.$/, '');
  return rule.wildcard ? name.endsWith(`.${rule.name}`) : name === rule.name;
}

const allowEntry = z
  .string()
  .max(300)
  .superRefine((text, ctx) => {
    try {
      parseAllowEntry(text);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });

/** The job contract's `network` field. */
export const NetworkSchema = z
  .union(
    [
      z.literal('none'),
      z.literal('internet'),
      z.strictObject({
        allow: z
          .array(allowEntry)
          .min(1, 'an allowlist needs at least one entry (or use "none")')
          .max(MAX_ALLOW_ENTRIES, `at most ${MAX_ALLOW_ENTRIES} entries`),
      }),
    ],
    { error: 'must be "none", "internet" or {"allow": [...]} (domains, *.domains, IPv4 addresses, CIDRs)' },
  )
  .default('none');
export type NetworkRequest = z.output<typeof NetworkSchema>;

/** The request as the runtime enforces it: entries parsed once. */
export function compileNetwork(request: NetworkRequest): NetworkPolicy {
  if (request === 'none' || request === 'internet') return { kind: request };
  return { kind: 'allow', rules: request.allow.map(parseAllowEntry) };
}

/** The level a request needs from its tenant's network ceiling. */
export function networkLevel(request: NetworkRequest): NetworkLevel {
  return request === 'none' ? 'none' : request === 'internet' ? 'internet' : 'allowlist';
}

/** Whether a tenant whose ceiling is `ceiling` may make this request. */
export function networkWithin(request: NetworkRequest, ceiling: NetworkLevel): boolean {
  return NETWORK_LEVELS.indexOf(networkLevel(request)) <= NETWORK_LEVELS.indexOf(ceiling);
}

/** `--network none|internet|allow=LIST` as the CLI takes it (LIST comma-separated). */
export function parseNetworkFlag(text: string): NetworkRequest {
  if (text === 'none' || text === 'internet') return text;
  if (text.startsWith('allow=')) {
    const allow = text
      .slice('allow='.length)
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
    for (const e of allow) parseAllowEntry(e);
    if (allow.length === 0) throw new RangeError('--network allow= needs at least one entry');
    return { allow };
  }
  throw new RangeError(`--network must be none, internet or allow=LIST (e.g. allow=pypi.org,*.example.com:443)`);
}

/** How a message names what a level lets a job ask for. */
const LEVEL_ASKS: Record<NetworkLevel, string> = {
  none: '"none"',
  allowlist: 'an allowlist ({"allow": [...]})',
  internet: '"internet"',
};

/**
 * Why a request is over its tenant's network ceiling, as a problem naming the field (`path`: "network", or
 * "jobs.3.network" in a batch) and saying what the tenant may use; null when it is within.
 */
export function networkCeilingProblem(
  request: NetworkRequest,
  ceiling: NetworkLevel,
  path = 'network',
): { path: string; message: string; asked: NetworkLevel; ceiling: NetworkLevel; allowed: NetworkLevel[] } | null {
  if (networkWithin(request, ceiling)) return null;
  const asked = networkLevel(request);
  const allowed = NETWORK_LEVELS.slice(0, NETWORK_LEVELS.indexOf(ceiling) + 1);
  const may = allowed.map((l) => LEVEL_ASKS[l]).join(' or ');
  return {
    path,
    message:
      `${LEVEL_ASKS[asked]} is above this tenant's network ceiling "${ceiling}": it may use ${may}` +
      ' (the operator raises it with lid tenants update NAME --network LEVEL)',
    asked,
    ceiling,
    allowed,
  };
}
