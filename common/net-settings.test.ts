// The operator's network settings as loadConfig reads them (LID_NET_POOL, LID_NET_UPLINK, LID_DNS_UPSTREAM): the
// defaults, what each accepts, and a bad value refused at start with a message naming the variable and what is
// wrong; and the DNS servers taken from a resolv.conf when LID_DNS_UPSTREAM is unset (a file this test writes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { dnsUpstreamServers, nameserversOf, parseNetPool, serviceAddresses } from './net-settings.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-net-settings-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The message loadConfig refuses `env` with. */
function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('LID_NET_POOL', () => {
  it('defaults to 10.231.0.0/16 and takes any IPv4 network from /8 to /24', () => {
    expect(loadConfig({}).netPool).toEqual({ cidr: '10.231.0.0/16', address: '10.231.0.0', prefix: 16 });
    expect(loadConfig({ LID_NET_POOL: '172.20.0.0/14' }).netPool).toEqual({
      cidr: '172.20.0.0/14',
      address: '172.20.0.0',
      prefix: 14,
    });
    expect(loadConfig({ LID_NET_POOL: '10.0.0.0/8' }).netPool.prefix).toBe(8);
    expect(loadConfig({ LID_NET_POOL: '192.168.77.0/24' }).netPool.prefix).toBe(24);
  });

  it.each([
    ['10.231.0.0', /^LID_NET_POOL="10.231.0.0" is invalid: must be an IPv4 CIDR such as 10.231.0.0\/16/],
    ['fd00::/64', /^LID_NET_POOL="fd00::\/64" is invalid: must be an IPv4 CIDR .*IPv6 is off/],
    ['10.300.0.0/16', /is invalid: must be an IPv4 CIDR/],
    ['10.231.0.0/25', /is invalid: the prefix must be between \/8 and \/24, not \/25/],
    ['10.0.0.0/7', /is invalid: the prefix must be between \/8 and \/24, not \/7/],
    ['10.231.5.0/16', /is invalid: has host bits set: write it as 10.231.0.0\/16/],
    ['127.0.0.0/8', /is invalid: overlaps 127.0.0.0\/8 \(loopback, link-local, multicast or reserved\)/],
    ['169.254.0.0/16', /is invalid: overlaps 169.254.0.0\/16/],
    ['169.0.0.0/8', /is invalid: overlaps 169.254.0.0\/16/], // holds link-local whole
    ['224.1.0.0/16', /is invalid: overlaps 224.0.0.0\/4/],
    ['250.0.0.0/8', /is invalid: overlaps 240.0.0.0\/4/],
  ])('refuses %s, naming the variable and what is wrong', (value, message) => {
    const text = refusal({ LID_NET_POOL: value });
    expect(text).toMatch(message);
    expect(text).toMatch(/^LID_NET_POOL=/);
  });

  it('parses the same outside config', () => {
    expect(parseNetPool(' 10.99.0.0/20 ')).toEqual({ cidr: '10.99.0.0/20', address: '10.99.0.0', prefix: 20 });
  });
});

describe('LID_NET_UPLINK', () => {
  it("is unset by default (the default route's interface) and takes an interface name", () => {
    expect(loadConfig({}).netUplink).toBeUndefined();
    expect(loadConfig({ LID_NET_UPLINK: 'eth0' }).netUplink).toBe('eth0');
    expect(loadConfig({ LID_NET_UPLINK: 'enp0s31f6.100' }).netUplink).toBe('enp0s31f6.100');
  });

  it.each(['eth0/1', 'a-very-long-interface', 'eth 0', 'eth0:1'])('refuses %j, naming the variable', (value) => {
    expect(refusal({ LID_NET_UPLINK: value })).toMatch(
      /^LID_NET_UPLINK=".*" is invalid: must be a network interface name such as eth0/,
    );
  });
});

describe('LID_DNS_UPSTREAM', () => {
  it("is unset by default (the worker's resolv.conf) and takes ip[:port] lists, IPv6 in brackets", () => {
    expect(loadConfig({}).dnsUpstream).toBeUndefined();
    expect(
      loadConfig({ LID_DNS_UPSTREAM: '192.0.2.53, 192.0.2.54:5353,[2001:db8::53]:53,2001:db8::54' }).dnsUpstream,
    ).toEqual([
      { address: '192.0.2.53', port: 53 },
      { address: '192.0.2.54', port: 5353 },
      { address: '2001:db8::53', port: 53 },
      { address: '2001:db8::54', port: 53 },
    ]);
  });

  it.each([
    ['dns.example.com', /"dns.example.com" is not an IP address with an optional :PORT/],
    ['192.0.2.53:0', /"192.0.2.53:0": the port must be 1-65535/],
    ['192.0.2.53:99999', /"192.0.2.53:99999": the port must be 1-65535/],
    ['192.0.2.300', /"192.0.2.300" is not an IP address/],
    [',', /must name at least one DNS server/],
  ])('refuses %j, naming the variable', (value, message) => {
    const text = refusal({ LID_DNS_UPSTREAM: value });
    expect(text).toMatch(/^LID_DNS_UPSTREAM=/);
    expect(text).toMatch(message);
  });
});

describe('DNS servers from resolv.conf', () => {
  const resolvConf = (text: string) => {
    const file = path.join(tmp, `resolv-${Math.random().toString(36).slice(2)}.conf`);
    fs.writeFileSync(file, text);
    return file;
  };

  it('takes the nameservers in order, skipping comments, options and what is not an address', () => {
    const text = [
      '# generated',
      'search example.internal',
      'nameserver 192.0.2.1',
      'nameserver 2001:db8::1 # trailing comment',
      ';nameserver 192.0.2.9',
      'nameserver fe80::1%eth0',
      'nameserver not-an-address',
      'options edns0',
    ].join('\n');
    expect(nameserversOf(text)).toEqual([
      { address: '192.0.2.1', port: 53 },
      { address: '2001:db8::1', port: 53 },
      { address: 'fe80::1%eth0', port: 53 },
    ]);
    expect(dnsUpstreamServers(undefined, resolvConf(text))).toHaveLength(3);
  });

  it('prefers LID_DNS_UPSTREAM, and says to set it when resolv.conf names none or cannot be read', () => {
    const configured = loadConfig({ LID_DNS_UPSTREAM: '192.0.2.53' }).dnsUpstream;
    expect(dnsUpstreamServers(configured, path.join(tmp, 'absent'))).toEqual([{ address: '192.0.2.53', port: 53 }]);
    expect(() => dnsUpstreamServers(undefined, resolvConf('search lan\n'))).toThrow(
      /names no nameserver: set LID_DNS_UPSTREAM$/,
    );
    expect(() => dnsUpstreamServers(undefined, path.join(tmp, 'absent'))).toThrow(
      /^cannot read .*absent for DNS servers .*: set LID_DNS_UPSTREAM$/,
    );
  });
});

describe("serviceAddresses (Lid's own services, which no sandbox may reach)", () => {
  it('takes IPv4 literals, every host of a Sentinel URL, and what a name resolves to; skips the rest', async () => {
    const found = await serviceAddresses([
      'redis://lid:secret@10.1.2.3:6379',
      'redis-sentinel://:pw@10.0.0.7:26379,10.0.0.8:26379/mymaster',
      'http://localhost:8080', // resolved through /etc/hosts, never a DNS server
      'http://[::1]:8080', // IPv6: sandboxes have none
      undefined,
      'not a url',
    ]);
    expect(found).toEqual(expect.arrayContaining(['10.1.2.3', '10.0.0.7', '10.0.0.8', '127.0.0.1']));
    expect(found).not.toContain('::1');
  });
});
