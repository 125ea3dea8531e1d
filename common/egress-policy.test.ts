// The address classification and the policy read from LID_ALLOW_PRIVATE_EGRESS, without any network: every kind of
// address in its usual and its IPv6-embedded spellings, properties over random addresses (fast-check), the allow
// list's forms and its errors, and the literal-host check the gateway makes on a callbackUrl.
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { type AddressKind, classifyAddress, EgressPolicy, effectiveAddress } from './egress-policy.js';

const KINDS: [AddressKind, string[]][] = [
  ['loopback', ['127.0.0.1', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1']],
  ['private', ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', 'fc00::1', 'fd12:3456::1', 'fec0::1']],
  ['link-local', ['169.254.0.1', '169.254.169.253', 'fe80::1', 'FE80::1%eth0', 'febf::1']],
  ['metadata', ['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254']],
  ['shared', ['100.64.0.1', '100.127.255.255']],
  ['multicast', ['224.0.0.1', '239.255.255.250', 'ff02::1', 'ff0e::1']],
  ['broadcast', ['255.255.255.255']],
  ['unspecified', ['0.0.0.0', '0.1.2.3', '::']],
  ['reserved', ['192.0.2.1', '198.51.100.1', '203.0.113.1', '198.18.0.1', '240.0.0.1', '2001:db8::1', '100::1']],
  [
    'public',
    ['8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '2606:4700::1111'],
  ],
];

describe('classifyAddress', () => {
  for (const [kind, addresses] of KINDS) {
    it(`knows ${kind} addresses`, () => {
      for (const address of addresses) expect(classifyAddress(address), address).toBe(kind);
    });
  }

  it('judges IPv6 spellings that carry an IPv4 address as that address', () => {
    const spellings: [string, AddressKind][] = [
      ['::ffff:127.0.0.1', 'loopback'], // mapped, dotted
      ['::ffff:7f00:1', 'loopback'], // mapped, hex (how URL writes it)
      ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
      ['::127.0.0.2', 'loopback'], // compatible
      ['::ffff:0:127.0.0.1', 'loopback'], // translated
      ['::ffff:169.254.169.254', 'metadata'],
      ['::ffff:a9fe:a9fe', 'metadata'],
      ['64:ff9b::a9fe:a9fe', 'metadata'], // NAT64 well-known prefix
      ['64:ff9b::10.0.0.1', 'private'],
      ['2002:a9fe:a9fe::1', 'metadata'], // 6to4
      ['2002:0a00:0001::', 'private'],
      ['::ffff:8.8.8.8', 'public'],
      ['64:ff9b:1::1', 'private'], // local-use NAT64
    ];
    for (const [address, kind] of spellings) expect(classifyAddress(address), address).toBe(kind);
    expect(effectiveAddress('::ffff:7f00:1')).toEqual({ address: '127.0.0.1', family: 'ipv4' });
  });

  it('throws on what is not an address', () => {
    for (const bad of ['localhost', '127.1', '1.2.3.4.5', ':::1', '']) {
      expect(() => classifyAddress(bad), bad).toThrow(/not an IP address/);
    }
  });

  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
  const hex = (a: string) => {
    const [w, x, y, z] = a.split('.').map(Number) as [number, number, number, number];
    return `${((w << 8) | x).toString(16)}:${((y << 8) | z).toString(16)}`;
  };

  it('property: every IPv4-carrying spelling of an address has its kind', () => {
    fc.assert(
      fc.property(ipv4, (a) => {
        const kind = classifyAddress(a);
        for (const spelled of [`::ffff:${a}`, `::ffff:${hex(a)}`, `0:0:0:0:0:ffff:${a}`, `::ffff:0:${a}`]) {
          expect(classifyAddress(spelled), spelled).toBe(kind);
        }
        expect(classifyAddress(`64:ff9b::${hex(a)}`)).toBe(kind);
      }),
      { numRuns: 2000 },
    );
  });

  it("property: an IPv6 address has one kind however it is written (full, or URL's compressed form)", () => {
    const word = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff));
    const prefix = fc.constantFrom(0, 0x64, 0x2002, 0xfe80, 0xfc00, 0xfd00, 0xff02, 0x2001, 0x2606);
    fc.assert(
      fc.property(prefix, fc.array(word, { minLength: 7, maxLength: 7 }), (first, rest) => {
        const full = [first, ...rest].map((w) => w.toString(16)).join(':');
        const compressed = new URL(`http://[${full}]/`).hostname.slice(1, -1);
        expect(classifyAddress(compressed), `${full} = ${compressed}`).toBe(classifyAddress(full));
      }),
      { numRuns: 2000 },
    );
  });

  it('property: the default policy allows exactly the public addresses; "true" all but metadata', () => {
    const loud = EgressPolicy.parse('true');
    fc.assert(
      fc.property(ipv4, (a) => {
        const kind = classifyAddress(a);
        expect(EgressPolicy.DEFAULT.verdict(a)).toEqual({ allowed: kind === 'public', kind });
        expect(EgressPolicy.DEFAULT.verdict(`::ffff:${a}`).allowed).toBe(kind === 'public');
        expect(loud.verdict(a).allowed).toBe(kind !== 'metadata');
        expect(EgressPolicy.ANY.verdict(a).allowed).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the IPv4 ranges that sandboxes with internet get (the nftables side of the same policy)', () => {
  const inRanges = (a: string, cidrs: string[]) => {
    const list = new net.BlockList();
    for (const c of cidrs) list.addSubnet(c.split('/')[0]!, Number(c.split('/')[1]), 'ipv4');
    return list.check(a, 'ipv4');
  };
  // Random addresses, and addresses near the edges of every range (where an off-by-one would show).
  const edges = KINDS.flatMap(([, list]) => list.filter((a) => net.isIPv4(a)));
  const address = fc.oneof(
    fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.')),
    fc.constantFrom(...edges, '203.0.112.255', '203.0.114.0', '10.1.2.3', '10.1.2.4', '169.254.169.255'),
  );
  it('property: refused minus exempt is exactly what verdict refuses, for every policy form', () => {
    const policies = [EgressPolicy.DEFAULT, EgressPolicy.parse('true'), EgressPolicy.ANY];
    policies.push(EgressPolicy.parse('203.0.113.0/24, 10.1.2.3, fd00::/8, 169.254.169.254'));
    fc.assert(
      fc.property(address, fc.constantFrom(...policies), (a, policy) => {
        const refused = inRanges(a, policy.refusedIpv4Ranges()) && !inRanges(a, policy.exemptIpv4Ranges());
        expect(refused).toBe(!policy.verdict(a).allowed);
      }),
      { numRuns: 4000 },
    );
  });
});

describe('EgressPolicy.parse (LID_ALLOW_PRIVATE_EGRESS)', () => {
  it('reads unset, false and 0 as public only', () => {
    for (const text of [undefined, '', 'false', '0', ' FALSE ']) {
      const policy = EgressPolicy.parse(text);
      expect(policy.verdict('127.0.0.1').allowed).toBe(false);
      expect(policy.verdict('93.184.216.34').allowed).toBe(true);
    }
  });

  it('reads true and 1 as every private kind, still not metadata', () => {
    for (const text of ['true', '1', 'TRUE']) {
      const policy = EgressPolicy.parse(text);
      for (const a of ['127.0.0.1', '10.1.2.3', 'fd12::1', '169.254.1.1', '100.64.0.1', '::1']) {
        expect(policy.verdict(a).allowed, a).toBe(true);
      }
      for (const a of ['169.254.169.254', '::ffff:169.254.169.254', 'fd00:ec2::254']) {
        expect(policy.verdict(a), a).toEqual({ allowed: false, kind: 'metadata' });
      }
    }
  });

  it('reads a CIDR list as exactly the addresses it covers, in any spelling; metadata only when covered', () => {
    const policy = EgressPolicy.parse('127.0.0.0/8, 10.1.2.3 ,fd00:1::/32');
    for (const a of ['127.0.0.1', '127.9.9.9', '::ffff:127.0.0.1', '::ffff:7f00:2', '10.1.2.3', 'fd00:1::5']) {
      expect(policy.verdict(a).allowed, a).toBe(true);
    }
    for (const a of ['10.1.2.4', '::1', '192.168.0.1', 'fd00:2::5', '169.254.169.254']) {
      expect(policy.verdict(a).allowed, a).toBe(false);
    }
    expect(policy.cidrs).toEqual(['127.0.0.0/8', '10.1.2.3', 'fd00:1::/32']);
    expect(EgressPolicy.parse('169.254.169.254/32').verdict('169.254.169.254')).toEqual({
      allowed: true,
      kind: 'metadata',
    });
    expect(EgressPolicy.parse('169.254.0.0/16').verdict('::ffff:169.254.169.254').allowed).toBe(true);
  });

  it('refuses what is not a CIDR, saying what it takes', () => {
    for (const bad of ['127.0.0.0/33', '::/129', 'example.com', '10.0.0.0/8,', 'yes', 'fe80::1%eth0/64', '10/8']) {
      expect(() => EgressPolicy.parse(bad), bad).toThrow(/is not a CIDR: give "true".*or CIDRs/);
    }
  });

  it('is read by loadConfig, with the other egress settings, and a bad value names its variable', () => {
    const config = loadConfig({
      LID_ALLOW_PRIVATE_EGRESS: '127.0.0.0/8',
      LID_REGISTRY_HOST_CREDENTIALS: 'Quay.io, reg.lan:5000',
      LID_PULL_MAX_BYTES: '2g',
      LID_PULL_TIMEOUT: '90s',
    });
    expect(config.egress.verdict('127.0.0.1').allowed).toBe(true);
    expect(config.registryHostCredentials).toEqual(['quay.io', 'reg.lan:5000']);
    expect(config.pullMaxBytes).toBe(2 * 1024 ** 3);
    expect(config.pullTimeoutMs).toBe(90_000);

    const defaults = loadConfig({});
    expect(defaults.egress).toBe(EgressPolicy.DEFAULT);
    expect(defaults.registryHostCredentials).toEqual([]);
    expect(defaults.pullMaxBytes).toBe(8 * 1024 ** 3);
    expect(defaults.pullTimeoutMs).toBe(600_000);

    const bad: [string, string][] = [
      ['LID_ALLOW_PRIVATE_EGRESS', '10.0.0.0/99'],
      ['LID_REGISTRY_HOST_CREDENTIALS', 'https://quay.io'],
      ['LID_PULL_MAX_BYTES', 'lots'],
      ['LID_PULL_TIMEOUT', '0'],
    ];
    for (const [name, value] of bad) {
      expect(() => loadConfig({ [name]: value }), name).toThrow(
        new RegExp(`^${name}="${value.replace(/[/.]/g, '\\$&')}" is invalid`),
      );
    }
  });
});

describe('refusedLiteralHost (the gateway check on callbackUrl)', () => {
  it('refuses literal addresses and localhost names the policy refuses, however the URL spells them', () => {
    const refused = [
      ['http://127.0.0.1:8080/hook', 'loopback'],
      ['http://localhost/hook', 'loopback'],
      ['http://LOCALHOST./hook', 'loopback'],
      ['http://app.localhost:3000/', 'loopback'],
      ['http://[::1]/', 'loopback'],
      ['http://[::ffff:127.0.0.1]/', 'loopback'],
      ['http://0x7f.1/', 'loopback'],
      ['http://2130706433/', 'loopback'],
      ['http://169.254.169.254/latest/meta-data/', 'metadata'],
      ['https://10.0.0.8/hook', 'private'],
      ['http://0.0.0.0:9464/metrics', 'unspecified'],
    ];
    for (const [url, kind] of refused) {
      expect(EgressPolicy.DEFAULT.refusedLiteralHost(url!), url).toMatch(new RegExp(`a ${kind} address`));
    }
    expect(EgressPolicy.parse('true').refusedLiteralHost('http://169.254.169.254/')).toMatch(/metadata/);
  });

  it('leaves names and allowed or public addresses to the check at delivery', () => {
    for (const url of ['https://hooks.example.com/x', 'http://8.8.8.8/', 'http://[2606:4700::1111]/', 'not a url']) {
      expect(EgressPolicy.DEFAULT.refusedLiteralHost(url), url).toBeUndefined();
    }
    const lan = EgressPolicy.parse('10.0.0.0/8,127.0.0.0/8');
    expect(lan.refusedLiteralHost('http://10.0.0.8/hook')).toBeUndefined();
    expect(lan.refusedLiteralHost('http://127.0.0.1/hook')).toBeUndefined();
    // localhost means 127.0.0.1 and ::1; delivery takes the first allowed one, so one is enough
    expect(lan.refusedLiteralHost('http://localhost/hook')).toBeUndefined();
    expect(EgressPolicy.parse('::1').refusedLiteralHost('http://localhost/hook')).toBeUndefined();
  });
});
