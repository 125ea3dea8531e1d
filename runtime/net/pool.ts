// The address pool of networked sandboxes (LID_NET_POOL, default 10.231.0.0/16): the bridge takes the first host
// address, and the sandbox holding uid slot N takes the address 2 + N. Slots are unique host-wide (flock: see
// runtime/uid-slots.ts), so addresses never collide, across runtimes too, with no allocator of their own. The pool
// must not overlap anything the worker's network namespace already routes: Lid checks its addresses and routes at
// start and refuses an overlapping pool, naming what it overlaps. The pool itself is parsed and checked by
// common/net-settings.ts (LID_NET_POOL, /8 to /24). Pure but for the two readers at the bottom.
import fs from 'node:fs';
import os from 'node:os';
import { LidError } from '../../common/errors.js';

export interface Pool {
  /** Network address, e.g. "10.231.0.0". */
  address: string;
  prefix: number;
}

export const DEFAULT_POOL: Pool = Object.freeze({ address: '10.231.0.0', prefix: 16 });

const toInt = (ip: string) => ip.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
const toIp = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
const size = (prefix: number) => 2 ** (32 - prefix);

export const bridgeAddress = (pool: Pool): string => toIp(toInt(pool.address) + 1);

/**
 * The pool's last 64 addresses are for resolvers: each Lid runtime of a network namespace listens on one of its own
 * (host-network.ts claims it), so a worker and `lid sandbox run` can serve networked sandboxes side by side.
 */
export const RESOLVER_ADDRESSES = 63;
const RESOLVER_BLOCK = 64;

/** The block of resolver addresses, as a CIDR (the pool's last /26): the firewall lets DNS reach only these. */
export function resolverBlock(pool: Pool): string {
  return `${toIp(toInt(pool.address) + size(pool.prefix) - RESOLVER_BLOCK)}/26`;
}

/** Resolver address number `n` (0 to 62), counted down from the last host address. */
export function resolverAddress(pool: Pool, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= RESOLVER_ADDRESSES) throw new RangeError(`no resolver address ${n}`);
  return toIp(toInt(pool.address) + size(pool.prefix) - 2 - n);
}

/** How many sandboxes the pool holds at once: every host address but the bridge's and the resolvers' block. */
export const capacity = (pool: Pool): number => size(pool.prefix) - 2 - RESOLVER_BLOCK;

/** The address of the sandbox in uid slot `index` (0-based). */
export function sandboxAddress(pool: Pool, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= capacity(pool))
    throw new LidError(
      'setup_failed',
      `uid slot ${index} has no address in the pool ${pool.address}/${pool.prefix} (${capacity(pool)} addresses): ` +
        'widen LID_NET_POOL',
    );
  return toIp(toInt(pool.address) + 2 + index);
}

/** The slot index whose sandbox has `address` (the inverse of sandboxAddress), or -1 outside the pool's range. */
export function addressIndex(pool: Pool, address: string): number {
  const index = toInt(address) - toInt(pool.address) - 2;
  return index >= 0 && index < capacity(pool) ? index : -1;
}

/** Whether two IPv4 networks share an address. */
export function overlaps(a: Pool, b: Pool): boolean {
  const prefix = Math.min(a.prefix, b.prefix); // the wider network: they overlap when it holds the other's start
  const mask = prefix === 0 ? 0 : ~(size(prefix) - 1) >>> 0;
  return (toInt(a.address) & mask) >>> 0 === (toInt(b.address) & mask) >>> 0;
}

export interface Occupant {
  what: string;
  network: Pool;
}

/** What of `taken` the pool overlaps; the bridge's own address (a restarted Lid finds it) does not count. */
export function clashes(pool: Pool, taken: Occupant[]): Occupant[] {
  return taken.filter((t) => overlaps(pool, t.network));
}

// --- What the worker's network namespace holds ----------------------------------------------------------------------

/** IPv4 routes of this network namespace (/proc/net/route: little-endian hex), and the default route's interface. */
export function readRoutes(text = fs.readFileSync('/proc/net/route', 'utf8')): {
  routes: Occupant[];
  defaultInterface: string | null;
} {
  const routes: Occupant[] = [];
  let defaultInterface: string | null = null;
  for (const line of text.split('\n').slice(1)) {
    const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (!iface || !dest || !mask) continue;
    const le = (hex: string) => Number.parseInt(hex.match(/../g)!.reverse().join(''), 16) >>> 0;
    const maskBits = le(mask).toString(2).replace(/0/g, '').length;
    if (le(dest) === 0 && maskBits === 0) {
      defaultInterface ??= iface;
      continue;
    }
    routes.push({
      what: `the route to ${toIp(le(dest))}/${maskBits} via ${iface}`,
      network: { address: toIp(le(dest)), prefix: maskBits },
    });
  }
  return { routes, defaultInterface };
}

/** IPv4 addresses of this network namespace's interfaces, as /32 networks (what a sandbox must never reach). */
export function hostAddresses(): Occupant[] {
  return Object.entries(os.networkInterfaces()).flatMap(([name, list]) =>
    (list ?? [])
      .filter((a) => a.family === 'IPv4')
      .map((a) => ({ what: `${a.address} on ${name}`, network: { address: a.address, prefix: 32 } })),
  );
}
