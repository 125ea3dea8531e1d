// Table `inet lid` as text for `nft -f`, and the keys of its set elements: pure, tested without root. The table is
// shared by every Lid runtime of a network namespace; sandboxes are told apart by their source address, which a
// sandbox cannot forge as long as it has no CAP_NET_ADMIN or CAP_NET_RAW in its network namespace (a bridge-family
// check of address against port would be needed otherwise):
//
//   admitted  ipv4_addr                              every admitted sandbox: the gate of `allow` and `resolved`, so
//                                                    that releasing a sandbox is one hash-set delete (fast) and its
//                                                    range elements (slow to delete) can go right after, off its path
//   internet  ipv4_addr                              sandboxes whose policy is internet
//   allow     ipv4_addr . ipv4_addr . inet_service   (sandbox . address range . port range) of CIDR rules, made
//             (interval)                             disjoint first: the kernel refuses overlapping elements
//   resolved  same, interval + timeout               (sandbox . resolved address . port range) of DNS answers, apart
//                                                    from `allow` so that answers never overlap CIDR rules
//   deny      ipv4_addr (interval)                   refused whatever the policy
//   refused   ipv4_addr (interval)                   refused by the operator's egress policy, unless in `exempt`
//   exempt    ipv4_addr (interval)                   what the operator allowed beyond public addresses
//   denied    ipv4_addr, dynamic, counter            refused packets per sandbox
//   generation  ipv4_addr : mark (map)               a number drawn at each admission, set as the ct mark of the
//   current   ipv4_addr . mark                       sandbox's new connections; established traffic passes only
//                                                    while (address . ct mark) is current, so a connection of a
//                                                    released sandbox is no way out (or in) for the next sandbox
//                                                    given its address, and no conntrack flush is needed
//
// Refused packets are counted by the rule that refuses them (`update @denied { ip saddr counter }`): no element
// exists until a sandbox is refused once, and the count is read with one GETSETELEM of one key. Only admitted
// addresses are counted (a released sandbox's last packets, or forged sources, add nothing), and counting is a rule
// apart from the drop, so a full `denied` set could lose counts, never let a packet through. TCP and UDP match the
// allowlist; ICMP does not (errors about allowed flows pass as ct related; `internet` sandboxes may ping).
import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import type { CidrRule } from '../../common/network-policy.js';
import type { SetElement } from './nf-netlink.js';

export interface FirewallConfig {
  bridge: string;
  pool: { address: string; prefix: number };
  /** The bridge's address: with `resolvers`, the only host addresses a sandbox may reach, and only on udp/tcp 53. */
  gateway: string;
  /** The block (a CIDR) where Lid runtimes' resolvers listen, one address each; default: the gateway alone. */
  resolvers?: string;
  /** The interface the pool is masqueraded out of. */
  uplink: string;
  /** IPv4 CIDRs always refused. The pool, 127.0.0.0/8 and 169.254.0.0/16 are added whatever this says. */
  deny: string[];
  /**
   * The operator's egress policy (common/egress-policy.ts, the one that polices Lid's own requests): IPv4 CIDRs it
   * refuses, and those it exempts from that. They bind every policy, internet and allowlists alike: a tenant's
   * allowlist cannot name what the operator keeps out (the LAN, say).
   */
  refused?: string[];
  exempt?: string[];
}

export const TABLE = 'lid';
const ALWAYS_DENIED = ['127.0.0.0/8', '169.254.0.0/16'];

// --- Addresses -------------------------------------------------------------------------------------------------------

export type Range = [number, number];

export const ipToInt = (ip: string) => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
export const intToIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export function cidrRange(cidr: string): Range {
  const [address, prefixText = '32'] = cidr.split('/') as [string, string?];
  const prefix = Number(prefixText);
  if (!net.isIPv4(address) || !/^\d{1,2}$/.test(prefixText) || prefix > 32)
    throw new RangeError(`"${cidr}" is not an IPv4 address or CIDR`);
  const size = 2 ** (32 - prefix);
  const lo = Math.floor(ipToInt(address) / size) * size;
  return [lo, lo + size - 1];
}

/** Sorted, with overlapping and adjacent ranges merged. */
export function mergeRanges(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const [lo, hi] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

export interface AllowBox {
  addresses: Range;
  ports: Range;
}

/**
 * The CIDR rules as disjoint (address range x port range) boxes covering exactly what the rules allow: a set of
 * concatenated ranges (nft_set_pipapo) refuses an element whose ends fall inside another (ENOTEMPTY), and rules such
 * as 203.0.113.0/24:443 beside 203.0.113.7 overlap.
 */
export function allowBoxes(rules: readonly CidrRule[]): AllowBox[] {
  const spans = rules.map((r) => ({ addresses: cidrRange(`${r.address}/${r.prefix}`), ports: [...r.ports] as Range }));
  const cuts = [...new Set(spans.flatMap((s) => [s.addresses[0], s.addresses[1] + 1]))].sort((a, b) => a - b);
  const out: AllowBox[] = [];
  let open: { addresses: Range; ports: Range[]; key: string } | undefined;
  const flush = () => open && out.push(...open.ports.map((ports) => ({ addresses: open!.addresses, ports })));
  for (let i = 0; i + 1 < cuts.length; i++) {
    const lo = cuts[i]!;
    const hi = cuts[i + 1]! - 1;
    const ports = mergeRanges(spans.filter((s) => s.addresses[0] <= lo && s.addresses[1] >= hi).map((s) => s.ports));
    const key = JSON.stringify(ports);
    if (open && open.key === key && open.addresses[1] + 1 === lo) open.addresses = [open.addresses[0], hi];
    else {
      flush();
      open = ports.length ? { addresses: [lo, hi], ports, key } : undefined;
    }
  }
  flush();
  return out;
}

// --- The ruleset -----------------------------------------------------------------------------------------------------

function checkConfig(cfg: FirewallConfig): void {
  for (const name of [cfg.bridge, cfg.uplink])
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(name)) throw new RangeError(`interface name ${JSON.stringify(name)} is invalid`);
  if (!net.isIPv4(cfg.gateway)) throw new RangeError(`gateway ${JSON.stringify(cfg.gateway)} is not an IPv4 address`);
  cidrRange(`${cfg.pool.address}/${cfg.pool.prefix}`);
  cfg.deny.forEach(cidrRange);
  if (cfg.resolvers !== undefined) cidrRange(cfg.resolvers);
  cfg.refused?.forEach(cidrRange);
  cfg.exempt?.forEach(cidrRange);
}

const rangeText = ([lo, hi]: Range) => (lo === hi ? intToIp(lo) : `${intToIp(lo)}-${intToIp(hi)}`);

/** The deny set's elements: every refused range, merged (an interval set refuses overlapping elements). */
export function denyElements(cfg: FirewallConfig): string[] {
  const pool = `${cfg.pool.address}/${cfg.pool.prefix}`;
  return mergeRanges([pool, ...ALWAYS_DENIED, ...cfg.deny].map(cidrRange)).map(rangeText);
}

/** Sets and chains without the deny set's elements: what two runtimes sharing the table must agree on. */
function skeleton(cfg: FirewallConfig): string {
  const t = `inet ${TABLE}`;
  const br = JSON.stringify(cfg.bridge);
  const pool = `${intToIp(cidrRange(`${cfg.pool.address}/${cfg.pool.prefix}`)[0])}/${cfg.pool.prefix}`;
  const tcpUdp = 'meta l4proto { tcp, udp }';
  return `add set ${t} deny { type ipv4_addr; flags interval; }
add set ${t} refused { type ipv4_addr; flags interval; }
add set ${t} exempt { type ipv4_addr; flags interval; }
add set ${t} admitted { type ipv4_addr; }
add set ${t} internet { type ipv4_addr; }
add set ${t} allow { type ipv4_addr . ipv4_addr . inet_service; flags interval; }
add set ${t} resolved { type ipv4_addr . ipv4_addr . inet_service; flags interval, timeout; }
add set ${t} denied { type ipv4_addr; size 65535; flags dynamic; }
add map ${t} generation { type ipv4_addr : mark; }
add set ${t} current { type ipv4_addr . mark; }
add chain ${t} forward { type filter hook forward priority filter; policy accept; }
add chain ${t} input { type filter hook input priority filter; policy accept; }
add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ${t} sandbox
add chain ${t} refuse
add rule ${t} forward iifname ${br} meta nfproto ipv6 drop
add rule ${t} forward oifname ${br} meta nfproto ipv6 drop
add rule ${t} forward iifname ${br} ct state established,related ip saddr . ct mark @current accept
add rule ${t} forward oifname ${br} ct state established,related ct original ip saddr . ct mark @current accept
add rule ${t} forward iifname ${br} jump sandbox
add rule ${t} forward oifname ${br} drop
add rule ${t} sandbox ip daddr @deny jump refuse
add rule ${t} sandbox ct state new ct mark set ip saddr map @generation
add rule ${t} sandbox ip daddr @refused ip daddr != @exempt jump refuse
add rule ${t} sandbox ip saddr @internet accept
add rule ${t} sandbox ip saddr != @admitted jump refuse
add rule ${t} sandbox ${tcpUdp} ip saddr . ip daddr . th dport @allow accept
add rule ${t} sandbox ${tcpUdp} ip saddr . ip daddr . th dport @resolved accept
add rule ${t} sandbox jump refuse
add rule ${t} refuse ip saddr @admitted update @denied { ip saddr counter }
add rule ${t} refuse drop
add rule ${t} input iifname ${br} meta nfproto ipv6 drop
add rule ${t} input iifname ${br} ip daddr { ${[cfg.gateway, ...(cfg.resolvers ? [cfg.resolvers] : [])].join(', ')} } ${tcpUdp} th dport 53 accept
add rule ${t} input iifname ${br} jump refuse
add rule ${t} postrouting ip saddr ${pool} oifname ${JSON.stringify(cfg.uplink)} masquerade
`;
}

/** Marks the table with its configuration, so that a second runtime can tell a table it may share. */
export function configTag(cfg: FirewallConfig): string {
  return `lid egress ${crypto.createHash('sha256').update(skeleton(cfg)).digest('hex').slice(0, 16)}`;
}

/** Replaces the elements of the sets that hold the operator's ranges (deny, refused, exempt), atomically. */
export function denyText(cfg: FirewallConfig): string {
  checkConfig(cfg);
  const sets: [string, string[]][] = [
    ['deny', denyElements(cfg)],
    ['refused', mergeRanges((cfg.refused ?? []).map(cidrRange)).map(rangeText)],
    ['exempt', mergeRanges((cfg.exempt ?? []).map(cidrRange)).map(rangeText)],
  ];
  return sets
    .map(
      ([set, elements]) =>
        `flush set inet ${TABLE} ${set}\n` +
        (elements.length ? `add element inet ${TABLE} ${set} { ${elements.join(', ')} }\n` : ''),
    )
    .join('');
}

/** The whole table, for `nft -f`: fails (EEXIST) if the table exists, so two runtimes never both create it. */
export function rulesetText(cfg: FirewallConfig): string {
  checkConfig(cfg);
  return `create table inet ${TABLE} { comment "${configTag(cfg)}"; }\n${skeleton(cfg)}${denyText(cfg)}`;
}

// --- Element keys ----------------------------------------------------------------------------------------------------

/** An IPv4 address as a key: 4 bytes, network order. */
export const addressKey = (ip: string) => Buffer.from(ip.split('.').map(Number));

/** (sandbox . address . port): each field big-endian, padded to 4 bytes, so 12 bytes. */
function concatKey(sandbox: string, address: number, port: number): Buffer {
  const b = Buffer.alloc(12);
  addressKey(sandbox).copy(b, 0);
  b.writeUInt32BE(address, 4);
  b.writeUInt16BE(port, 8);
  return b;
}

/** A ct mark as nftables holds it: a u32 in host byte order (little-endian on x86-64 and arm64). */
function markBytes(generation: number): Buffer {
  const b = Buffer.alloc(4);
  if (os.endianness() === 'LE') b.writeUInt32LE(generation);
  else b.writeUInt32BE(generation);
  return b;
}

/** The element of map `generation` for an admission, and that of set `current`. */
export function generationElements(sandbox: string, generation: number): { map: SetElement; current: SetElement } {
  const key = addressKey(sandbox);
  return { map: { key, data: markBytes(generation) }, current: { key: Buffer.concat([key, markBytes(generation)]) } };
}

export function boxElement(sandbox: string, box: AllowBox, timeoutMs?: number): SetElement {
  return {
    key: concatKey(sandbox, box.addresses[0], box.ports[0]),
    keyEnd: concatKey(sandbox, box.addresses[1], box.ports[1]),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  };
}

/** The sandbox address an element of any of the table's sets is about (its key's first field). */
export const elementSandbox = (key: Buffer) => [...key.subarray(0, 4)].join('.');
