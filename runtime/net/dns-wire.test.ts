// The wire reader against hostile bytes: what a sandbox or a bad upstream could send.
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { compileNetwork } from '../../common/network-policy.js';
import { decideQuery, grantedAddresses } from './dns-policy.js';
import { DnsFormatError, parseMessage, readName, rewriteReply, TYPE } from './dns-wire.js';

const header = (qd: number, an = 0) => Buffer.from([0, 1, 0x81, 0x80, 0, qd, 0, an, 0, 0, 0, 0]);

describe('readName', () => {
  it('canonicalises case and spells bytes that are not letters, digits, - or _ as \\DDD', () => {
    const wire = Buffer.from([3, ...Buffer.from('WwW'), 5, ...Buffer.from('a.b c'), 0]);
    expect(readName(wire, 0)).toEqual({ name: 'www.a\\046b\\032c', end: wire.length });
  });

  it('follows a backward pointer, and refuses a pointer to itself or forwards (no loops)', () => {
    const wire = Buffer.concat([Buffer.from([4, ...Buffer.from('test'), 0]), Buffer.from([1, 0x61, 0xc0, 0])]);
    expect(readName(wire, 6)).toEqual({ name: 'a.test', end: 10 });
    expect(() => readName(Buffer.from([0xc0, 0]), 0)).toThrow(DnsFormatError);
    expect(() => readName(Buffer.from([1, 0x61, 0xc0, 0]), 0)).toThrow(DnsFormatError); // back to its own start
    expect(() => readName(Buffer.from([0xc0, 2, 0]), 0)).toThrow(DnsFormatError);
  });

  it('refuses truncated labels, reserved label types and names over 255 bytes', () => {
    expect(() => readName(Buffer.from([5, 0x61]), 0)).toThrow(DnsFormatError);
    expect(() => readName(Buffer.from([0x40, 0]), 0)).toThrow(DnsFormatError);
    const long = Buffer.concat([
      ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])),
      Buffer.from([0]),
    ]);
    expect(() => readName(long, 0)).toThrow(/longer than 255/);
  });
});

describe('parseMessage', () => {
  it('refuses counts that promise more records than the bytes hold', () => {
    expect(() => parseMessage(Buffer.concat([header(1, 5), Buffer.from([0, 0, 1, 0, 1])]))).toThrow(DnsFormatError);
    expect(() => parseMessage(Buffer.alloc(11))).toThrow(DnsFormatError);
  });

  it('finds the EDNS payload size and the offsets of every TTL', () => {
    const raw = dnsPacket.encode({
      type: 'response',
      id: 5,
      questions: [{ type: 'A', name: 'a.example.test' }],
      answers: [{ type: 'A', name: 'a.example.test', ttl: 99999, data: '192.0.2.1' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1400,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    const msg = parseMessage(raw);
    expect(msg.ednsUdpSize).toBe(1400);
    const out = dnsPacket.decode(rewriteReply(raw, msg, 0xbeef, 3600));
    expect(out.id).toBe(0xbeef);
    expect((out.answers![0] as { ttl: number }).ttl).toBe(3600);
    expect((out.additionals![0] as { udpPayloadSize: number }).udpPayloadSize).toBe(1400); // OPT untouched
  });
});

describe('grantedAddresses', () => {
  it('stops at a CNAME loop, ignores A records of other classes or lengths', () => {
    const raw = dnsPacket.encode({
      type: 'response',
      questions: [{ type: 'A', name: 'a.example.test' }],
      answers: [
        { type: 'CNAME', name: 'a.example.test', data: 'b.example.test' },
        { type: 'CNAME', name: 'b.example.test', data: 'a.example.test' },
        { type: 'A', name: 'b.example.test', data: '192.0.2.5', ttl: 10 },
        { type: 'A', name: 'b.example.test', data: '192.0.2.6', ttl: 10, class: 'CH' },
      ],
    });
    expect(grantedAddresses(raw, parseMessage(raw), 'a.example.test')).toEqual([{ address: '192.0.2.5', ttl: 10 }]);
  });
});

describe('decideQuery', () => {
  it('allowlist with only CIDR rules resolves no name; AAAA of a name not allowed is NXDOMAIN, not empty', () => {
    expect(decideQuery(compileNetwork({ allow: ['203.0.113.0/24'] }), 'a.example.test', TYPE.A).kind).toBe('nxdomain');
    expect(decideQuery(compileNetwork({ allow: ['a.example.test'] }), 'b.example.test', TYPE.AAAA).kind).toBe(
      'nxdomain',
    );
    expect(decideQuery(compileNetwork({ allow: ['a.example.test'] }), 'a.example.test', TYPE.AAAA).kind).toBe('empty');
  });
});
