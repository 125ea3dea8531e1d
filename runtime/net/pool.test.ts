import { describe, expect, it } from 'vitest';
import { parseNetPool } from '../../common/net-settings.js';
import {
  addressIndex,
  bridgeAddress,
  capacity,
  clashes,
  overlaps,
  readRoutes,
  resolverAddress,
  resolverBlock,
  sandboxAddress,
} from './pool.js';

const parsePool = (text: string) => {
  const { address, prefix } = parseNetPool(text);
  return { address, prefix };
};

describe('the sandbox address pool', () => {
  it('gives the bridge the first address and slot N the address 2 + N', () => {
    const pool = parsePool('10.231.0.0/16');
    expect(bridgeAddress(pool)).toBe('10.231.0.1');
    expect(sandboxAddress(pool, 0)).toBe('10.231.0.2');
    expect(sandboxAddress(pool, 300)).toBe('10.231.1.46');
    expect(addressIndex(pool, '10.231.1.46')).toBe(300);
    expect(addressIndex(pool, '10.231.0.1')).toBe(-1);
    expect(capacity(pool)).toBe(65536 - 66);
    expect(() => sandboxAddress(parsePool('10.9.9.0/24'), 190)).toThrow(/widen LID_NET_POOL/);
  });

  it('keeps the last /26 for resolvers, out of every sandbox address', () => {
    const pool = parsePool('10.9.9.0/24');
    expect(resolverBlock(pool)).toBe('10.9.9.192/26');
    expect(resolverAddress(pool, 0)).toBe('10.9.9.254');
    expect(resolverAddress(pool, 62)).toBe('10.9.9.192');
    expect(() => resolverAddress(pool, 63)).toThrow(RangeError);
    expect(sandboxAddress(pool, capacity(pool) - 1)).toBe('10.9.9.191');
  });

  it('finds what a pool would overlap', () => {
    const pool = parsePool('10.231.0.0/16');
    expect(overlaps(pool, parsePool('10.0.0.0/8'))).toBe(true);
    expect(overlaps(pool, { address: '10.231.200.7', prefix: 32 })).toBe(true);
    expect(overlaps(pool, parsePool('10.232.0.0/16'))).toBe(false);
    expect(clashes(pool, [{ what: 'eth0', network: { address: '10.231.5.5', prefix: 32 } }])).toHaveLength(1);
  });

  it('reads routes and the default route’s interface from /proc/net/route', () => {
    const text = [
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
      'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
      'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    ].join('\n');
    const { routes, defaultInterface } = readRoutes(text);
    expect(defaultInterface).toBe('eth0');
    expect(routes.map((r) => r.network)).toEqual([{ address: '192.0.2.0', prefix: 24 }]);
  });
});
