// Where the requests Lid makes for tenants may go (callbacks, registry pulls, their token servers, every redirect
// hop): public unicast addresses only, unless the operator allows more with LID_ALLOW_PRIVATE_EGRESS. A tenant who
// can make Lid's host send a request to 127.0.0.1, the LAN or a cloud's metadata service reaches what only the
// operator should (Redis, the metrics port, the node's cloud credentials), so the classification below is the
// boundary; policed-fetch.ts applies it to the address each connection really uses.
//
// IPv6 spellings that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, translated
// ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged as the IPv4 address they carry: the kernel (or a
// translator) delivers them there, so ::ffff:127.0.0.1 is loopback. net.BlockList holds the ranges.
//
// LID_ALLOW_PRIVATE_EGRESS: unset (or "false"/"0") refuses every kind below; "true"/"1" allows all of them except
// cloud metadata endpoints, which hand out the node's credentials and which no Lid feature needs; a comma-separated
// list of CIDRs (or single addresses) allows exactly the addresses it covers, metadata included when a CIDR covers
// it -- an operator who writes 169.254.169.254/32 meant it.
import net from 'node:net';

/** What an address is, for the policy and for messages. Everything but `public` is refused by default. */
export type AddressKind =
  | 'public'
  | 'metadata'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared' // 100.64.0.0/10, carrier-grade NAT
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'reserved'; // documentation, benchmarking, IETF and future-use ranges: nothing legitimate listens there

type Family = 'ipv4' | 'ipv6';

// Checked in this order, so the narrower kinds (metadata inside link-local and shared, broadcast inside 240/4) win.
const RANGES: Record<Exclude<AddressKind, 'public'>, string[]> = {
  metadata: [
    '169.254.169.254/32', // AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean
    '169.254.170.2/32', // AWS ECS task credentials
    '100.100.100.200/32', // Alibaba Cloud
    'fd00:ec2::254/128', // AWS over IPv6
  ],
  broadcast: ['255.255.255.255/32'],
  unspecified: ['0.0.0.0/8', '::/128'], // connecting to 0.0.0.0 reaches the local host
  loopback: ['127.0.0.0/8', '::1/128'],
  private: [
    '10.0.0.0/8',
    '172.16.0.0/12',
    '192.168.0.0/16',
    'fc00::/7', // unique local
    'fec0::/10', // site-local, deprecated but still routed by some stacks
    '64:ff9b:1::/48', // local-use NAT64: translates into the site's own network
  ],
  shared: ['100.64.0.0/10'],
  'link-local': ['169.254.0.0/16', 'fe80::/10'],
  multicast: ['224.0.0.0/4', 'ff00::/8'],
  reserved: [
    '192.0.0.0/24',
    '192.0.2.0/24',
    '198.18.0.0/15',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '240.0.0.0/4',
    '100::/64', // discard-only
    '2001:db8::/32', // documentation
  ],
};

const KINDS = Object.entries(RANGES).map(([kind, cidrs]) => {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const [address, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(prefix), net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
  return { kind: kind as Exclude<AddressKind, 'public'>, list };
});

/** An address as Lid judges it: the IPv4 address an IPv6 spelling carries, else the address itself. */
export function effectiveAddress(address: string): { address: string; family: Family } {
  const bare = address.split('%')[0]!; // a zone (fe80::1%eth0) says which link, not which address
  if (net.isIPv4(bare)) return { address: bare, family: 'ipv4' };
  const words = ipv6Words(bare);
  if (!words) throw new RangeError(`${JSON.stringify(address)} is not an IP address`);
  const v4 = embeddedIpv4(words);
  return v4 ? { address: v4, family: 'ipv4' } : { address: bare, family: 'ipv6' };
}

/** The kind of an IP address (IPv4 or IPv6 text, as DNS or a URL gives it). */
export function classifyAddress(address: string): AddressKind {
  const { address: effective, family } = effectiveAddress(address);
  return KINDS.find((k) => k.list.check(effective, family))?.kind ?? 'public';
}

/** The eight 16-bit words of an IPv6 address, or undefined when it is not one. */
function ipv6Words(text: string): number[] | undefined {
  if (!net.isIPv6(text)) return undefined;
  let head = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  if (net.isIPv4(dotted)) {
    const [a, b, c, d] = dotted.split('.').map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    head = text.slice(0, text.endsWith(`::${dotted}`) ? lastColon + 1 : lastColon);
  }
  const [left, right] = head.split('::') as [string, string | undefined];
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const before = words(left);
  const after = right === undefined ? [] : words(right);
  const zeros = 8 - before.length - after.length - tail.length;
  return [...before, ...Array<number>(right === undefined ? 0 : zeros).fill(0), ...after, ...tail];
}

function embeddedIpv4(w: number[]): string | undefined {
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && w[5] === 0xffff) return v4(w[6]!, w[7]!); // ::ffff:a.b.c.d, mapped
  if (zero(0, 4) && w[4] === 0xffff && w[5] === 0) return v4(w[6]!, w[7]!); // ::ffff:0:a.b.c.d, translated
  if (zero(0, 6) && (w[6] !== 0 || w[7]! > 1)) return v4(w[6]!, w[7]!); // ::a.b.c.d, compatible (not :: or ::1)
  if (w[0] === 0x64 && w[1] === 0xff9b && zero(2, 6)) return v4(w[6]!, w[7]!); // NAT64 well-known prefix
  if (w[0] === 0x2002) return v4(w[1]!, w[2]!); // 6to4
  return undefined;
}

export type Verdict = { allowed: true; kind: AddressKind } | { allowed: false; kind: AddressKind };

const TRUE = ['true', '1'];
const FALSE = ['false', '0'];

/** The operator's choice, immutable; built from LID_ALLOW_PRIVATE_EGRESS by `parse` (config.ts does that). */
export class EgressPolicy {
  /** Public addresses only: what a tenant's request gets when the operator said nothing. */
  static readonly DEFAULT = new EgressPolicy('none', [], new net.BlockList());
  /** Every address: for requests the operator makes themselves (`lid images pull`), who can reach them anyway. */
  static readonly ANY = new EgressPolicy('any', [], new net.BlockList());

  private constructor(
    private readonly mode: 'none' | 'private' | 'cidrs' | 'any',
    /** The CIDRs as given, for messages. */
    readonly cidrs: readonly string[],
    private readonly allowed: net.BlockList,
  ) {}

  /**
   * Reads LID_ALLOW_PRIVATE_EGRESS: unset, "", "false" or "0" (public only); "true" or "1" (every private kind but
   * metadata); or CIDRs and addresses separated by commas ("127.0.0.0/8, fd00::/8, 10.1.2.3"). Throws a RangeError
   * saying what it accepts.
   */
  static parse(text: string | undefined): EgressPolicy {
    const value = (text ?? '').trim().toLowerCase();
    if (value === '' || FALSE.includes(value)) return EgressPolicy.DEFAULT;
    if (TRUE.includes(value)) return new EgressPolicy('private', [], new net.BlockList());
    const list = new net.BlockList();
    const cidrs = value.split(',').map((s) => s.trim());
    for (const cidr of cidrs) {
      const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(cidr);
      const address = match?.[1] ?? '';
      const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) && !address.includes('%') ? 'ipv6' : null;
      const prefix = match?.[2] === undefined ? (family === 'ipv4' ? 32 : 128) : Number(match[2]);
      if (!family || prefix > (family === 'ipv4' ? 32 : 128)) {
        throw new RangeError(
          `${JSON.stringify(cidr)} is not a CIDR: give "true" (allow private addresses but metadata), or CIDRs and addresses separated by commas, e.g. 127.0.0.0/8,fd00::/8`,
        );
      }
      list.addSubnet(address, prefix, family);
    }
    return new EgressPolicy('cidrs', cidrs, list);
  }

  /** May Lid connect to `address` for a tenant? */
  verdict(address: string): Verdict {
    const kind = classifyAddress(address);
    return { allowed: this.allows(address, kind), kind };
  }

  private allows(address: string, kind: AddressKind): boolean {
    if (kind === 'public' || this.mode === 'any') return true;
    if (this.mode === 'private') return kind !== 'metadata';
    if (this.mode !== 'cidrs') return false;
    // An allowed 127.0.0.0/8 covers ::ffff:127.0.0.1 too: the address is checked as written and as it is judged.
    const bare = address.split('%')[0]!;
    const effective = effectiveAddress(bare);
    return (
      this.allowed.check(bare, net.isIPv4(bare) ? 'ipv4' : 'ipv6') ||
      this.allowed.check(effective.address, effective.family)
    );
  }

  /**
   * The same decision for networked sandboxes with `internet` (runtime/net/egress-firewall.ts), as IPv4 CIDRs for
   * nftables (sandboxes have no IPv6): the ranges refused, and those the operator exempted from them.
   */
  refusedIpv4Ranges(): string[] {
    if (this.mode === 'any') return [];
    const kinds = this.mode === 'private' ? (['metadata'] as const) : KINDS.map((k) => k.kind);
    return kinds.flatMap((kind) => RANGES[kind].filter((cidr) => net.isIPv4(cidr.split('/')[0]!)));
  }

  exemptIpv4Ranges(): string[] {
    if (this.mode !== 'cidrs') return [];
    return this.cidrs
      .filter((cidr) => net.isIPv4(cidr.split('/')[0]!))
      .map((cidr) => (cidr.includes('/') ? cidr : `${cidr}/32`));
  }

  /** How the policy reads, for messages: what else is allowed beyond public addresses. */
  describe(): string {
    if (this.mode === 'any') return 'every address';
    if (this.mode === 'private') return 'public and private addresses, not metadata endpoints';
    if (this.mode === 'cidrs') return `public addresses and ${this.cidrs.join(', ')}`;
    return 'public addresses only';
  }

  /**
   * What is wrong with a URL's host before any DNS: a literal IP, or "localhost" (RFC 6761 names that always mean
   * loopback), that the policy refuses; undefined when the host is a name to be checked when it is resolved.
   */
  refusedLiteralHost(url: string): string | undefined {
    let host: string;
    try {
      host = new URL(url).hostname; // WHATWG URL reads 0x7f.1 and 2130706433 as 127.0.0.1
    } catch {
      return undefined; // a malformed URL is the schema's business
    }
    const literal = host.startsWith('[') ? host.slice(1, -1) : host;
    const lower = literal.toLowerCase().replace(/\.$/, '');
    const addresses =
      lower === 'localhost' || lower.endsWith('.localhost') ? ['127.0.0.1', '::1'] : net.isIP(literal) ? [literal] : [];
    // As at delivery, where the first allowed address is used: refused only when none of them is allowed.
    const verdicts = addresses.map((address) => ({ address, ...this.verdict(address) }));
    const refused = verdicts.find((v) => !v.allowed);
    if (!refused || verdicts.some((v) => v.allowed)) return undefined;
    return refusalText(host, refused.address, refused.kind, this);
  }
}

/** The message for a refused address: what it is, and who can change that. */
export function refusalText(host: string, address: string, kind: AddressKind, policy: EgressPolicy): string {
  const what = host === address || host === `[${address}]` ? address : `${host} (${address})`;
  return `Lid does not connect to ${what}, a ${kind} address, on a tenant's behalf: it allows ${policy.describe()} (the operator sets this with LID_ALLOW_PRIVATE_EGRESS)`;
}
