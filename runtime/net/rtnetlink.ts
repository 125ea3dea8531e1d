// The few rtnetlink requests a networked sandbox needs, built here by hand (NETLINK_ROUTE, linux/rtnetlink.h,
// linux/if_link.h, linux/veth.h): the bridge, a veth pair whose host end is a port of the bridge and whose other end
// lands in the sandbox's network namespace, bridge-port isolation, and a link's byte counters. Spawning `ip` costs
// milliseconds a call; a netlink request costs tens of microseconds. Message building is pure (tested without root);
// RouteNetlink sends them on a socket opened in the namespace the caller is in when it opens it.
import { LidError } from '../../common/errors.js';
import * as sys from '../syscalls.js';

const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_SETLINK = 19;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_BRIDGE = 7;
const IFF_UP = 0x1;

const IFLA = { ADDRESS: 1, IFNAME: 3, MASTER: 10, PROTINFO: 12, LINKINFO: 18, STATS64: 23, NET_NS_FD: 28 } as const;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_ISOLATED = 33;
const IFA = { ADDRESS: 1, LOCAL: 2 } as const;

// --- Message building (pure) ---------------------------------------------------------------------------------------

const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: u16 length, u16 type, payload, padded to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(align4(4 + payload.length));
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export const nested = (type: number, ...children: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(children));
const cstring = (s: string) => Buffer.from(`${s}\0`);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const u8 = (n: number) => Buffer.from([n]);

/** struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; } */
function ifinfomsg(family: number, index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; } followed by the body. */
export function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32LE(16 + body.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  return Buffer.concat([head, body]);
}

const IFNAME_MAX = 15;

function checkName(name: string): void {
  if (!/^[a-zA-Z0-9_.-]+$/.test(name) || name.length > IFNAME_MAX)
    throw new RangeError(`interface name ${JSON.stringify(name)} must be 1-${IFNAME_MAX} of [a-zA-Z0-9_.-]`);
}

/**
 * A MAC address for `ipv4`: locally administered, unicast, 02:4c:a.b.c.d. A bridge whose MAC is not set takes the
 * lowest of its ports' and changes as sandboxes come and go (stale ARP entries in running sandboxes); a sandbox whose
 * MAC follows its address keeps the host's ARP entry valid when its address passes to the next sandbox while the
 * old one's namespace is still going away.
 */
export function macFor(ipv4: string): Buffer {
  return Buffer.from([0x02, 0x4c, ...ipv4.split('.').map(Number)]);
}

/** RTM_NEWLINK for a bridge named `name`, up, with the fixed MAC `mac`. */
export function newBridgeMessage(seq: number, name: string, mac: Buffer): Buffer {
  checkName(name);
  const body = Buffer.concat([
    ifinfomsg(AF_UNSPEC, 0, IFF_UP, IFF_UP),
    attr(IFLA.IFNAME, cstring(name)),
    attr(IFLA.ADDRESS, mac),
    nested(IFLA.LINKINFO, attr(IFLA_INFO.KIND, cstring('bridge'))),
  ]);
  return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body);
}

export interface VethOptions {
  hostName: string;
  masterIndex: number;
  peerName: string;
  peerNetnsFd: number;
  peerMac: Buffer;
}

/**
 * RTM_NEWLINK for a veth pair: `hostName` (up, a port of the bridge `masterIndex`) here, and its peer `peerName` in
 * the network namespace `peerNetnsFd` (left down: the sandbox's init brings it up with its address).
 */
export function newVethMessage(seq: number, opts: VethOptions): Buffer {
  checkName(opts.hostName);
  checkName(opts.peerName);
  const peer = Buffer.concat([
    ifinfomsg(AF_UNSPEC, 0),
    attr(IFLA.IFNAME, cstring(opts.peerName)),
    attr(IFLA.ADDRESS, opts.peerMac),
    attr(IFLA.NET_NS_FD, u32(opts.peerNetnsFd)),
  ]);
  const body = Buffer.concat([
    ifinfomsg(AF_UNSPEC, 0, IFF_UP, IFF_UP),
    attr(IFLA.IFNAME, cstring(opts.hostName)),
    attr(IFLA.MASTER, u32(opts.masterIndex)),
    nested(IFLA.LINKINFO, attr(IFLA_INFO.KIND, cstring('veth')), nested(IFLA_INFO.DATA, attr(VETH_INFO_PEER, peer))),
  ]);
  return message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body);
}

/** Bridge-port isolation on for `index`: isolated ports of a bridge cannot reach each other, only the bridge. */
export function isolatePortMessage(seq: number, index: number): Buffer {
  const body = Buffer.concat([ifinfomsg(AF_BRIDGE, index), nested(IFLA.PROTINFO, attr(IFLA_BRPORT_ISOLATED, u8(1)))]);
  return message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body);
}

/** Sets `index` up (or down). */
export function setUpMessage(seq: number, index: number, up = true): Buffer {
  return message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifinfomsg(AF_UNSPEC, index, up ? IFF_UP : 0, IFF_UP));
}

/** RTM_NEWADDR: an IPv4 address with its prefix on `index`. */
export function newAddressMessage(seq: number, index: number, address: string, prefix: number): Buffer {
  const ip = Buffer.from(address.split('.').map(Number));
  // struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }
  const ifa = Buffer.alloc(8);
  ifa.writeUInt8(AF_INET, 0);
  ifa.writeUInt8(prefix, 1);
  ifa.writeUInt32LE(index, 4);
  const body = Buffer.concat([ifa, attr(IFA.LOCAL, ip), attr(IFA.ADDRESS, ip)]);
  return message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, body);
}

/** RTM_GETLINK by name (index 0) or by index. */
export function getLinkMessage(seq: number, by: { name: string } | { index: number }): Buffer {
  const body =
    'name' in by
      ? Buffer.concat([ifinfomsg(AF_UNSPEC, 0), attr(IFLA.IFNAME, cstring(by.name))])
      : ifinfomsg(AF_UNSPEC, by.index);
  return message(RTM_GETLINK, NLM_F_REQUEST, seq, body);
}

// --- Replies (pure) -------------------------------------------------------------------------------------------------

const NLMSG_ERROR = 2;

export interface Reply {
  type: number;
  /** For NLMSG_ERROR: the (positive) errno, 0 for an ACK. */
  errno?: number;
  body: Buffer;
}

/** Splits a datagram into its messages. */
export function parseReplies(datagram: Buffer): Reply[] {
  const out: Reply[] = [];
  for (let at = 0; at + 16 <= datagram.length;) {
    const len = datagram.readUInt32LE(at);
    if (len < 16 || at + len > datagram.length) break;
    const type = datagram.readUInt16LE(at + 4);
    const body = datagram.subarray(at + 16, at + len);
    out.push(type === NLMSG_ERROR ? { type, errno: -body.readInt32LE(0), body } : { type, body });
    at += align4(len);
  }
  return out;
}

/** The attributes of a body after a fixed header of `skip` bytes, by type (nested flag cleared). */
export function attributes(body: Buffer, skip: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let at = skip; at + 4 <= body.length;) {
    const len = body.readUInt16LE(at);
    if (len < 4) break;
    out.set(body.readUInt16LE(at + 2) & ~NLA_F_NESTED, body.subarray(at + 4, at + len));
    at += align4(len);
  }
  return out;
}

export interface LinkInfo {
  index: number;
  /** struct rtnl_link_stats64's first four counters, as the link sees them. */
  rxBytes: number;
  txBytes: number;
}

export function parseLink(reply: Reply): LinkInfo {
  const index = reply.body.readInt32LE(4);
  const stats = attributes(reply.body, 16).get(IFLA.STATS64);
  // struct rtnl_link_stats64 { u64 rx_packets, tx_packets, rx_bytes, tx_bytes, ... }
  const rxBytes = stats ? Number(stats.readBigUInt64LE(16)) : 0;
  const txBytes = stats ? Number(stats.readBigUInt64LE(24)) : 0;
  return { index, rxBytes, txBytes };
}

// --- The socket ------------------------------------------------------------------------------------------------------

/** A NETLINK_ROUTE socket in the network namespace the calling thread was in when it opened it. */
export class RouteNetlink {
  private seq = 1;
  private readonly fd = sys.netlinkSocket(NETLINK_ROUTE);

  /** Sends one request and waits for its answer: the replies before the ACK; an error becomes a LidError. */
  private request(build: (seq: number) => Buffer, what: string): Reply[] {
    const seq = this.seq++;
    sys.netlinkSend(this.fd, build(seq));
    const replies: Reply[] = [];
    for (;;) {
      for (const reply of parseReplies(sys.netlinkReceive(this.fd))) {
        if (reply.type !== NLMSG_ERROR) {
          replies.push(reply);
          continue;
        }
        if (reply.errno === 0) return replies;
        throw new LidError('setup_failed', `netlink: ${what} failed: ${sys.errnoName(reply.errno!)}`, {
          errno: sys.errnoName(reply.errno!),
        });
      }
      if (replies.length) return replies; // a GET without NLM_F_ACK answers with its data alone
    }
  }

  createBridge(name: string, mac: Buffer): void {
    this.request((seq) => newBridgeMessage(seq, name, mac), `creating bridge ${name}`);
  }

  addAddress(index: number, address: string, prefix: number): void {
    this.request((seq) => newAddressMessage(seq, index, address, prefix), `adding ${address}/${prefix}`);
  }

  setUp(index: number): void {
    this.request((seq) => setUpMessage(seq, index), `setting link ${index} up`);
  }

  createVeth(opts: VethOptions): void {
    this.request((seq) => newVethMessage(seq, opts), `creating veth ${opts.hostName}`);
  }

  isolatePort(index: number): void {
    this.request((seq) => isolatePortMessage(seq, index), `isolating bridge port ${index}`);
  }

  /** The link named `name` or numbered `index`, or null when there is none. */
  link(by: { name: string } | { index: number }): LinkInfo | null {
    try {
      const [reply] = this.request((seq) => getLinkMessage(seq, by), `reading link ${JSON.stringify(by)}`);
      return reply ? parseLink(reply) : null;
    } catch (e) {
      if ((e as LidError).details?.errno === 'ENODEV') return null;
      throw e;
    }
  }

  close(): void {
    sys.close(this.fd);
  }
}
