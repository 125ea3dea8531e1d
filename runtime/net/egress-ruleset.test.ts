// The pure half of the egress firewall: the ruleset text, the allowlist as disjoint boxes, and the nf_tables
// messages byte for byte. No root, no kernel (egress-firewall.test.ts sends them).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CidrRule } from '../../common/network-policy.js';
import {
  allowBoxes,
  boxElement,
  cidrRange,
  configTag,
  denyElements,
  ipToInt,
  rulesetText,
  type FirewallConfig,
} from './egress-ruleset.js';
import { batchMessage, getElementMessage, parseElements, parseNfReplies } from './nf-netlink.js';
import { attr, nested } from './rtnetlink.js';

const CFG: FirewallConfig = {
  bridge: 'lid0',
  pool: { address: '10.231.0.0', prefix: 16 },
  gateway: '10.231.0.1',
  uplink: 'eth0',
  deny: ['192.168.0.0/16', '192.168.4.0/24', '10.0.0.0/8'],
};

describe('rulesetText', () => {
  it('creates the table (failing if it exists), marked with its configuration, with the deny set merged', () => {
    const text = rulesetText(CFG);
    expect(text.split('\n')[0]).toBe(`create table inet lid { comment "${configTag(CFG)}"; }`);
    expect(text).toContain(
      'add rule inet lid input iifname "lid0" ip daddr { 10.231.0.1 } meta l4proto { tcp, udp } th dport 53 accept',
    );
    const withResolvers = rulesetText({ ...CFG, resolvers: '10.231.255.192/26' });
    expect(withResolvers).toContain('ip daddr { 10.231.0.1, 10.231.255.192/26 } meta l4proto { tcp, udp } th dport 53');
    // The operator's egress policy binds every policy: refused unless exempt, before internet or an allowlist.
    const withPolicy = rulesetText({ ...CFG, refused: ['198.51.100.0/24', '10.0.0.0/8'], exempt: ['198.51.100.7'] });
    expect(withPolicy).toContain(
      'add element inet lid refused { 10.0.0.0-10.255.255.255, 198.51.100.0-198.51.100.255 }',
    );
    expect(withPolicy).toContain('add element inet lid exempt { 198.51.100.7 }');
    const sandboxRules = withPolicy.split('\n').filter((l) => l.startsWith('add rule inet lid sandbox'));
    const refusedRule = sandboxRules.findIndex((l) => l.includes('ip daddr @refused ip daddr != @exempt jump refuse'));
    expect(refusedRule).toBeGreaterThan(0);
    expect(refusedRule).toBeLessThan(sandboxRules.findIndex((l) => l.includes('@internet accept')));
    expect(refusedRule).toBeLessThan(sandboxRules.findIndex((l) => l.includes('@allow accept')));
    expect(text).toContain('add rule inet lid postrouting ip saddr 10.231.0.0/16 oifname "eth0" masquerade');
    // 10.0.0.0/8 holds the pool; 192.168.4.0/24 is inside 192.168.0.0/16: an interval set refuses overlaps.
    expect(denyElements(CFG)).toEqual([
      '10.0.0.0-10.255.255.255',
      '127.0.0.0-127.255.255.255',
      '169.254.0.0-169.254.255.255',
      '192.168.0.0-192.168.255.255',
    ]);
  });

  it('always denies the pool, loopback and link-local, whatever the configuration says', () => {
    expect(denyElements({ ...CFG, deny: [] })).toEqual([
      '10.231.0.0-10.231.255.255',
      '127.0.0.0-127.255.255.255',
      '169.254.0.0-169.254.255.255',
    ]);
  });

  it('tags by what runtimes must share, not by the deny list, which each opener refreshes', () => {
    expect(configTag({ ...CFG, deny: [] })).toBe(configTag(CFG));
    expect(configTag({ ...CFG, uplink: 'eth1' })).not.toBe(configTag(CFG));
    expect(configTag({ ...CFG, gateway: '10.231.0.2' })).not.toBe(configTag(CFG));
  });

  it('refuses what could inject nft syntax or is not IPv4', () => {
    expect(() => rulesetText({ ...CFG, bridge: 'lid0" accept #' })).toThrow(/interface name/);
    expect(() => rulesetText({ ...CFG, uplink: '' })).toThrow(/interface name/);
    expect(() => rulesetText({ ...CFG, gateway: '10.231.0.1; flush ruleset' })).toThrow(/gateway/);
    expect(() => rulesetText({ ...CFG, deny: ['fd00::/8'] })).toThrow(/not an IPv4/);
    expect(() => rulesetText({ ...CFG, deny: ['10.0.0.0/33'] })).toThrow(/not an IPv4/);
  });
});

describe('allowBoxes', () => {
  const rule = (address: string, prefix: number, ports: [number, number]): CidrRule => ({
    kind: 'cidr',
    address,
    prefix,
    ports,
  });

  it('splits an address inside a wider rule, and merges what can be merged', () => {
    const boxes = allowBoxes([rule('203.0.113.0', 24, [443, 443]), rule('203.0.113.7', 32, [1, 65535])]);
    const at = (ip: string) => ipToInt(ip);
    expect(boxes).toEqual([
      { addresses: [at('203.0.113.0'), at('203.0.113.6')], ports: [443, 443] },
      { addresses: [at('203.0.113.7'), at('203.0.113.7')], ports: [1, 65535] },
      { addresses: [at('203.0.113.8'), at('203.0.113.255')], ports: [443, 443] },
    ]);
    expect(allowBoxes([rule('10.0.0.0', 25, [80, 80]), rule('10.0.0.128', 25, [80, 80])])).toEqual([
      { addresses: cidrRange('10.0.0.0/24'), ports: [80, 80] },
    ]);
  });

  it('covers exactly what the rules allow, with no two boxes overlapping (property)', () => {
    // A small world (10.0.0.0/27, ports 1-40) so that rules overlap often.
    const ruleArb = fc
      .record({
        host: fc.integer({ min: 0, max: 31 }),
        prefix: fc.integer({ min: 27, max: 32 }),
        lo: fc.integer({ min: 1, max: 40 }),
        len: fc.integer({ min: 0, max: 15 }),
      })
      .map(({ host, prefix, lo, len }) => {
        const [first] = cidrRange(`10.0.0.${host}/${prefix}`);
        return rule(`10.0.0.${first % 256}`, prefix, [lo, Math.min(40, lo + len)]);
      });
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 6 }), (rules) => {
        const boxes = allowBoxes(rules);
        for (let host = 0; host < 32; host++)
          for (let port = 1; port <= 40; port++) {
            const a = ipToInt(`10.0.0.${host}`);
            const inRule = rules.some((r) => {
              const [lo, hi] = cidrRange(`${r.address}/${r.prefix}`);
              return lo <= a && a <= hi && r.ports[0] <= port && port <= r.ports[1];
            });
            const hits = boxes.filter(
              (b) => b.addresses[0] <= a && a <= b.addresses[1] && b.ports[0] <= port && port <= b.ports[1],
            );
            expect(hits.length).toBe(inRule ? 1 : 0);
          }
      }),
    );
  });
});

describe('nf_tables messages', () => {
  it('encodes a concatenated range element: each field big-endian, padded to 4 bytes', () => {
    const e = boxElement('10.231.0.5', { addresses: cidrRange('203.0.113.0/24'), ports: [8000, 8100] }, 1500);
    expect(e.key.toString('hex')).toBe('0ae70005' + 'cb007100' + '1f400000');
    expect(e.keyEnd!.toString('hex')).toBe('0ae70005' + 'cb0071ff' + '1fa40000');
    expect(e.timeoutMs).toBe(1500);
  });

  it('frames a batch: BEGIN and END for subsystem nftables, one message per change, the last asking for an ACK', () => {
    const key = Buffer.from([10, 231, 0, 5]);
    const batch = batchMessage(7, [
      { table: 'lid', set: 'internet', op: 'add', elements: [{ key }] },
      { table: 'lid', set: 'internet', op: 'delete', elements: [{ key }] },
    ]);
    const messages = parseNfReplies(batch);
    expect(messages.map((m) => [m.type, m.seq])).toEqual([
      [0x10, 7],
      [(10 << 8) | 12, 8],
      [(10 << 8) | 14, 9],
      [0x11, 10],
    ]);
    expect(batch.readUInt16BE(16 + 2)).toBe(10); // BATCH_BEGIN's nfgenmsg res_id: NFNL_SUBSYS_NFTABLES
    // The kernel reports every failing message; only the last asks for an ACK, so one datagram answers success.
    expect(batch.readUInt16LE(20 + 6)).toBe(0x1 | 0x400); // NEWSETELEM: REQUEST | CREATE
    const del = 20 + messages[1]!.body.length + 20;
    expect(batch.readUInt16LE(del + 6)).toBe(0x1 | 0x4); // DELSETELEM: REQUEST | ACK
    expect(batch.readUInt8(20 + 16)).toBe(1); // nfgenmsg family NFPROTO_INET
    expect(parseElements(messages[1]!.body)).toEqual([{ key }]);
    expect(getElementMessage(3, { table: 'lid', set: 'denied' }, key).readUInt16LE(6)).toBe(0x1);
  });

  it('reads the packets of an element counter', () => {
    const be64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(n));
      return b;
    };
    const counter = nested(7, attr(1, Buffer.from('counter\0')), nested(2, attr(1, be64(1234)), attr(2, be64(17))));
    const elem = nested(1, nested(1, attr(1, Buffer.from([10, 231, 0, 5]))), counter);
    const body = Buffer.concat([attr(1, Buffer.from('lid\0')), attr(2, Buffer.from('denied\0')), nested(3, elem)]);
    expect(parseElements(body)).toEqual([{ key: Buffer.from([10, 231, 0, 5]), packets: 17 }]);
  });
});
