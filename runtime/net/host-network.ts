// The worker's side of sandbox networking, set up once per runtime in the network namespace the runtime runs in:
// the bridge lid0 with the pool's first address (shared by every Lid runtime in that namespace: the first one makes
// it, the others find it), the uplink (the default route's interface, unless LID_NET_UPLINK names one), and the
// checks that the pool overlaps nothing already there. Per sandbox it hands out the addressing (runtime/net/pool.ts)
// and the files that make a sandbox's name resolution Lid's (/etc/resolv.conf names the bridge, where Lid's resolver
// answers). The veth pair itself is made on the spawner thread (runtime/net/sandbox-link.ts), which is where the
// sandbox's new network namespace exists.
import fs from 'node:fs';
import { LidError } from '../../common/errors.js';
import path from 'node:path';
import * as sys from '../syscalls.js';
import {
  bridgeAddress,
  clashes,
  hostAddresses,
  type Pool,
  RESOLVER_ADDRESSES,
  readRoutes,
  resolverAddress,
  sandboxAddress,
} from './pool.js';
import { macFor, RouteNetlink } from './rtnetlink.js';

export const BRIDGE = 'lid0';
const LOCK_DIR = '/run/lid/net';

export interface HostNetworkOptions {
  pool: Pool;
  /** The interface sandboxes' traffic leaves by; default: the default route's. */
  uplink?: string;
}

/** What a networked sandbox is given: its address, and where its veth's host end goes. */
export interface SandboxNet {
  address: string;
  prefix: number;
  gateway: string;
  bridgeIndex: number;
  /** The host end's name, unique in this process (an old pair may still be going away). */
  hostName: string;
}

export class HostNetwork {
  private seq = 0;

  private constructor(
    readonly pool: Pool,
    readonly bridgeIndex: number,
    readonly uplink: string,
  ) {}

  /** Finds or makes the bridge, after checking the pool against what this namespace already has. */
  static open(opts: HostNetworkOptions): HostNetwork {
    const nl = new RouteNetlink();
    try {
      const gateway = bridgeAddress(opts.pool);
      const existing = nl.link({ name: BRIDGE });
      const { routes, defaultInterface } = readRoutes();
      // What a running Lid made (the bridge, its address and its route) is no clash; anything else in the pool is.
      const taken = [...hostAddresses(), ...routes].filter(
        (o) => !(existing && (o.what.endsWith(` on ${BRIDGE}`) || o.what.endsWith(` via ${BRIDGE}`))),
      );
      const clash = clashes(opts.pool, taken);
      if (clash.length) {
        throw new LidError(
          'unsupported',
          `the sandbox network pool ${opts.pool.address}/${opts.pool.prefix} overlaps ${clash
            .map((c) => c.what)
            .slice(0, 3)
            .join(', ')}: choose another with LID_NET_POOL`,
        );
      }
      const uplink = opts.uplink ?? defaultInterface;
      if (!uplink)
        throw new LidError(
          'unsupported',
          'this network namespace has no default route, so sandboxes would have no way out: add one or set LID_NET_UPLINK',
        );
      // Asked over netlink: /sys may be the mount of another network namespace (nsenter --net keeps the host's).
      if (!nl.link({ name: uplink }))
        throw new LidError('unsupported', `LID_NET_UPLINK names ${uplink}, which this network namespace does not have`);
      let index = existing?.index;
      if (index === undefined) {
        try {
          nl.createBridge(BRIDGE, macFor(gateway));
        } catch (e) {
          if ((e as LidError).details?.errno !== 'EEXIST') throw e; // another runtime made it a moment ago
        }
        index = nl.link({ name: BRIDGE })!.index;
        try {
          nl.addAddress(index, gateway, opts.pool.prefix);
        } catch (e) {
          if ((e as LidError).details?.errno !== 'EEXIST') throw e;
        }
        nl.setUp(index);
      }
      return new HostNetwork(opts.pool, index, uplink);
    } finally {
      nl.close();
    }
  }

  /** The addressing of the sandbox holding uid slot `slotIndex`. */
  sandbox(slotIndex: number): SandboxNet {
    return {
      address: sandboxAddress(this.pool, slotIndex),
      prefix: this.pool.prefix,
      gateway: bridgeAddress(this.pool),
      bridgeIndex: this.bridgeIndex,
      hostName: `lv${slotIndex}x${(this.seq++ % 36 ** 5).toString(36)}`,
    };
  }

  /**
   * Claims an address of the resolvers' block for this runtime's resolver and puts it on the bridge. Runtimes of one
   * network namespace never share one: each is claimed with flock on a lock file named after the namespace, which
   * the kernel lets go of when the process dies; the address stays on the bridge for the next runtime to reuse.
   */
  claimResolverAddress(): { address: string; release: () => void } {
    const netns = fs.statSync('/proc/self/ns/net').ino;
    fs.mkdirSync(LOCK_DIR, { recursive: true, mode: 0o700 });
    for (let n = 0; n < RESOLVER_ADDRESSES; n++) {
      const fd = fs.openSync(path.join(LOCK_DIR, `netns-${netns}-resolver-${n}.lock`), 'a', 0o600);
      if (!sys.flockExclusiveNoWait(fd)) {
        fs.closeSync(fd);
        continue;
      }
      const address = resolverAddress(this.pool, n);
      const nl = new RouteNetlink();
      try {
        nl.addAddress(this.bridgeIndex, address, 32);
      } catch (e) {
        if ((e as LidError).details?.errno !== 'EEXIST') {
          fs.closeSync(fd);
          throw e;
        }
      } finally {
        nl.close();
      }
      return { address, release: () => fs.closeSync(fd) };
    }
    throw new LidError(
      'setup_failed',
      `all ${RESOLVER_ADDRESSES} resolver addresses of this network namespace are taken by other Lid runtimes`,
    );
  }
}

/** The files a networked sandbox gets: Lid's resolver (at `nameserver`) as its only one, and its own name. */
export function resolverFiles(
  net: SandboxNet,
  nameserver: string,
  hostname: string,
): { path: string; content: string }[] {
  return [
    { path: '/etc/resolv.conf', content: `nameserver ${nameserver}\noptions ndots:1 timeout:2 attempts:2\n` },
    { path: '/etc/hosts', content: `127.0.0.1\tlocalhost\n${net.address}\t${hostname}\n` },
  ];
}
