// The operator's network settings, as common/config.ts reads them and the runtime's networking (runtime/net/) takes
// them: the address pool sandboxes get their addresses from (LID_NET_POOL), the uplink their traffic leaves by
// (LID_NET_UPLINK) and the DNS servers Lid's resolver forwards allowed names to (LID_DNS_UPSTREAM, by default the
// nameservers of the worker's /etc/resolv.conf). Parsing, the one read of resolv.conf and the lookup of Lid's own
// service addresses; nothing here touches an interface or a route.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import type { EgressPolicy } from './egress-policy.js';

/** An IPv4 network, its host bits clear: 10.231.0.0/16 is { address: '10.231.0.0', prefix: 16 }. */
export interface Ipv4Pool {
  /** As the operator wrote it, normalised: "10.231.0.0/16". */
  cidr: string;
  address: string;
  prefix: number;
}

/** A DNS server to forward to: an IPv4 or IPv6 address (an IPv6 link-local one with its %zone) and a port. */
export interface DnsServer {
  address: string;
  port: number;
}

export const DEFAULT_NET_POOL = '10.231.0.0/16';
/** /24 keeps room for 253 sandboxes beside the bridge; /8 is the largest private block there is. */
export const NET_POOL_PREFIXES = [8, 24] as const;

// Ranges a pool may not overlap: packets to them mean something else to every host ("this network", loopback,
// link-local with the metadata services, multicast, the reserved 240/4 with broadcast).
const NOT_A_POOL = [
  ['0.0.0.0', 8],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const;

const toNumber = (address: string) => address.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const toAddress = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** LID_NET_POOL: an IPv4 CIDR with a prefix from /8 to /24, written as its network address. */
export function parseNetPool(text: string): Ipv4Pool {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!m || !net.isIPv4(m[1]!))
    throw new RangeError(`must be an IPv4 CIDR such as ${DEFAULT_NET_POOL} (IPv6 is off in Lid sandboxes)`);
  const prefix = Number(m[2]);
  const [lo, hi] = NET_POOL_PREFIXES;
  if (prefix < lo || prefix > hi) throw new RangeError(`the prefix must be between /${lo} and /${hi}, not /${prefix}`);
  const size = 2 ** (32 - prefix);
  const first = toNumber(m[1]!);
  const network = first - (first % size);
  if (network !== first) throw new RangeError(`has host bits set: write it as ${toAddress(network)}/${prefix}`);
  // Two networks overlap when one holds the other's first address.
  const within = (n: number, start: number, prefix: number) => n >= start && n < start + 2 ** (32 - prefix);
  const clash = NOT_A_POOL.find(([r, p]) => within(toNumber(r), network, prefix) || within(network, toNumber(r), p));
  if (clash)
    throw new RangeError(
      `overlaps ${clash[0]}/${clash[1]} (loopback, link-local, multicast or reserved): use a private range`,
    );
  return { cidr: `${m[1]}/${prefix}`, address: m[1]!, prefix };
}

/** LID_NET_UPLINK: a Linux interface name (at most 15 characters, no "/", ":" or spaces). */
export function parseUplink(text: string): string {
  const name = text.trim();
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(name))
    throw new RangeError('must be a network interface name such as eth0 (at most 15 letters, digits, _ . -)');
  return name;
}

/** One server: "1.1.1.1", "1.1.1.1:5353", "2001:db8::53", "[2001:db8::53]:5353", "fe80::1%eth0". */
export function parseDnsServer(text: string): DnsServer {
  const entry = text.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry);
  const v4 = /^([\d.]+)(?::(\d{1,5}))?$/.exec(entry);
  const [address, portText] = bracketed ? [bracketed[1]!, bracketed[2]] : v4 ? [v4[1]!, v4[2]] : [entry, undefined];
  const port = portText === undefined ? 53 : Number(portText);
  if (!net.isIP(address.split('%')[0]!))
    throw new RangeError(
      `"${text}" is not an IP address with an optional :PORT (e.g. 192.0.2.53 or [2001:db8::53]:53)`,
    );
  if (port < 1 || port > 65535) throw new RangeError(`"${text}": the port must be 1-65535`);
  return { address, port };
}

/** LID_DNS_UPSTREAM: comma-separated servers, at least one. */
export function parseDnsUpstream(text: string): DnsServer[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new RangeError('must name at least one DNS server, e.g. 192.0.2.53,192.0.2.54:53');
  return entries.map(parseDnsServer);
}

/** The nameservers a resolv.conf names, in order (port 53; entries that are not addresses are skipped). */
export function nameserversOf(resolvConf: string): DnsServer[] {
  return resolvConf.split('\n').flatMap((line) => {
    const [keyword, address] = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    return keyword === 'nameserver' && address && net.isIP(address.split('%')[0]!) ? [{ address, port: 53 }] : [];
  });
}

/**
 * The servers Lid's resolver forwards to: LID_DNS_UPSTREAM's when set, else the nameservers of the worker's own
 * resolv.conf (read when called: the runtime calls it at start). None at all is an error naming the setting.
 */
export function dnsUpstreamServers(configured: DnsServer[] | undefined, resolvConf = '/etc/resolv.conf'): DnsServer[] {
  if (configured?.length) return configured;
  let text: string;
  try {
    text = fs.readFileSync(resolvConf, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${resolvConf} for DNS servers (${(e as Error).message}): set LID_DNS_UPSTREAM`);
  }
  const servers = nameserversOf(text);
  if (servers.length === 0) throw new Error(`${resolvConf} names no nameserver: set LID_DNS_UPSTREAM`);
  return servers;
}

/** What a worker (or `lid sandbox run`) hands SandboxRuntime.start as `network`, from its configuration. */
export function sandboxNetworkOptions(
  config: { netPool: Ipv4Pool; netUplink?: string; dnsUpstream?: DnsServer[]; egress: EgressPolicy },
  protect: string[] = [],
): { pool: Ipv4Pool; uplink?: string; upstreams?: DnsServer[]; egress: EgressPolicy; protect: string[] } {
  return {
    pool: config.netPool,
    uplink: config.netUplink,
    upstreams: config.dnsUpstream,
    egress: config.egress,
    protect,
  };
}

/**
 * The IPv4 addresses of Lid's own services (Redis, the gateway) named by these URLs, which no sandbox may reach
 * whatever its policy. A name that does not resolve protects nothing and is skipped: the service is then not
 * reachable through it either.
 */
export async function serviceAddresses(urls: (string | undefined)[]): Promise<string[]> {
  const found = new Set<string>();
  for (const url of urls) {
    if (!url) continue;
    let hosts: string[];
    if (/^redis-sentinel:\/\//i.test(url)) {
      // redis-sentinel://[user:pass@]h1:p1,h2:p2/name carries several hosts, which URL cannot parse.
      const authority = url.replace(/^[^/]*\/\/(?:[^@/]*@)?/, '').split('/')[0]!;
      hosts = authority.split(',').map((h) => h.replace(/:\d+$/, ''));
    } else {
      try {
        hosts = [new URL(url).hostname.replace(/^\[|\]$/g, '')];
      } catch {
        continue;
      }
    }
    for (const host of hosts) {
      if (net.isIPv4(host)) found.add(host);
      else if (!net.isIP(host)) {
        const addresses = await dns.lookup(host, { all: true, family: 4 }).catch(() => []);
        for (const a of addresses) found.add(a.address);
      }
    }
  }
  return [...found];
}
