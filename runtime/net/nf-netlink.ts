// nf_tables set elements over NETLINK_NETFILTER (linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h), built by
// hand: the per-sandbox changes of the egress firewall are set elements only, and one netlink batch costs tens of
// microseconds where spawning `nft` costs milliseconds. A batch (NFNL_MSG_BATCH_BEGIN .. END) is one nf_tables
// transaction: every message in it applies, or none does. Message building and parsing are pure (tested without
// root); NfNetlink sends them on a socket opened in the network namespace the caller is in when it opens it.
import { LidError } from '../../common/errors.js';
import * as sys from '../syscalls.js';
import { attr, nested } from './rtnetlink.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFPROTO_UNSPEC = 0;
/** The `inet` family: one table for IPv4 and IPv6. */
export const NFPROTO_INET = 1;
const NFT_MSG = { NEWSETELEM: 12, GETSETELEM: 13, DELSETELEM: 14 } as const;
const NLM_F = { REQUEST: 0x1, ACK: 0x4, DUMP: 0x300, CREATE: 0x400 } as const;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3 } as const;
const NFTA_SET_ELEM = { KEY: 1, DATA: 2, TIMEOUT: 4, EXPIRATION: 5, EXPR: 7, KEY_END: 10, EXPRESSIONS: 11 } as const;
const NFTA_DATA_VALUE = 1;
const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
const NFTA_COUNTER_PACKETS = 2;
const NLA_F_NESTED = 0x8000;

/** One set element: its key (each field of a concatenation padded to 4 bytes), the end of its range, a timeout. */
export interface SetElement {
  key: Buffer;
  /** Inclusive end of a range, for interval sets of concatenations (nft_set_pipapo). */
  keyEnd?: Buffer;
  /** The value of a map's element. */
  data?: Buffer;
  timeoutMs?: number;
}

export interface ElementRef {
  table: string;
  set: string;
}

export interface ElementChange extends ElementRef {
  op: 'add' | 'delete';
  elements: SetElement[];
}

// --- Message building (pure) ---------------------------------------------------------------------------------------

const cstring = (s: string) => Buffer.from(`${s}\0`);

function be64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** struct nlmsghdr + struct nfgenmsg { u8 family; u8 version = NFNETLINK_V0; be16 res_id; } + attributes. */
function nfMessage(type: number, flags: number, seq: number, family: number, resId: number, body: Buffer): Buffer {
  const head = Buffer.alloc(20);
  head.writeUInt32LE(20 + body.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(flags, 6);
  head.writeUInt32LE(seq, 8);
  head.writeUInt8(family, 16);
  head.writeUInt16BE(resId, 18);
  return Buffer.concat([head, body]);
}

const nftType = (msg: number) => (NFNL_SUBSYS_NFTABLES << 8) | msg;

function elementAttr(e: SetElement): Buffer {
  return nested(
    NFTA_LIST_ELEM,
    nested(NFTA_SET_ELEM.KEY, attr(NFTA_DATA_VALUE, e.key)),
    ...(e.keyEnd ? [nested(NFTA_SET_ELEM.KEY_END, attr(NFTA_DATA_VALUE, e.keyEnd))] : []),
    ...(e.data ? [nested(NFTA_SET_ELEM.DATA, attr(NFTA_DATA_VALUE, e.data))] : []),
    ...(e.timeoutMs !== undefined ? [attr(NFTA_SET_ELEM.TIMEOUT, be64(e.timeoutMs))] : []),
  );
}

function elementList(ref: ElementRef, elements: SetElement[]): Buffer {
  return Buffer.concat([
    attr(NFTA_SET_ELEM_LIST.TABLE, cstring(ref.table)),
    attr(NFTA_SET_ELEM_LIST.SET, cstring(ref.set)),
    ...(elements.length ? [nested(NFTA_SET_ELEM_LIST.ELEMENTS, ...elements.map(elementAttr))] : []),
  ]);
}

/**
 * One transaction: BATCH_BEGIN, a NEWSETELEM or DELSETELEM per change, BATCH_END. Sequence numbers are seq, seq+1, ...
 * Only the last change asks for an ACK: the kernel reports every failing message anyway, before that ACK, so one
 * datagram answers a batch that applied. Adding an element that exists is not an error (no NLM_F_EXCL); deleting
 * one that does not is (ENOENT), and fails the whole batch.
 */
export function batchMessage(seq: number, changes: ElementChange[]): Buffer {
  const parts = [
    nfMessage(NFNL_MSG_BATCH_BEGIN, NLM_F.REQUEST, seq, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0)),
  ];
  for (const [i, c] of changes.entries()) {
    const type = nftType(c.op === 'add' ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM);
    const ack = i === changes.length - 1 ? NLM_F.ACK : 0;
    const flags = NLM_F.REQUEST | ack | (c.op === 'add' ? NLM_F.CREATE : 0);
    parts.push(nfMessage(type, flags, seq + 1 + i, NFPROTO_INET, 0, elementList(c, c.elements)));
  }
  const end = seq + 1 + changes.length;
  parts.push(nfMessage(NFNL_MSG_BATCH_END, NLM_F.REQUEST, end, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** GETSETELEM of one element by key (answered by the element, or by ENOENT). */
export function getElementMessage(seq: number, ref: ElementRef, key: Buffer): Buffer {
  const body = elementList(ref, [{ key }]);
  return nfMessage(nftType(NFT_MSG.GETSETELEM), NLM_F.REQUEST, seq, NFPROTO_INET, 0, body);
}

/** GETSETELEM dump: every element of the set, in as many messages as it takes, then NLMSG_DONE. */
export function dumpElementsMessage(seq: number, ref: ElementRef): Buffer {
  const body = elementList(ref, []);
  return nfMessage(nftType(NFT_MSG.GETSETELEM), NLM_F.REQUEST | NLM_F.DUMP, seq, NFPROTO_INET, 0, body);
}

// --- Replies (pure) -------------------------------------------------------------------------------------------------

export interface NfReply {
  type: number;
  seq: number;
  /** For NLMSG_ERROR: the (positive) errno, 0 for an ACK. */
  errno?: number;
  /** After struct nfgenmsg (data messages) or the error code (NLMSG_ERROR). */
  body: Buffer;
}

const align4 = (n: number) => (n + 3) & ~3;

export function parseNfReplies(datagram: Buffer): NfReply[] {
  const out: NfReply[] = [];
  for (let at = 0; at + 16 <= datagram.length;) {
    const len = datagram.readUInt32LE(at);
    if (len < 16 || at + len > datagram.length) break;
    const type = datagram.readUInt16LE(at + 4);
    const seq = datagram.readUInt32LE(at + 8);
    const body = datagram.subarray(at + 16, at + len);
    if (type === NLMSG_ERROR) out.push({ type, seq, errno: -body.readInt32LE(0), body: body.subarray(4) });
    else out.push({ type, seq, body: type === NLMSG_DONE ? body : body.subarray(4) });
    at += align4(len);
  }
  return out;
}

/** The attributes of `buf`, in order, as [type (nested flag cleared), payload]. */
function attrList(buf: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let at = 0; at + 4 <= buf.length;) {
    const len = buf.readUInt16LE(at);
    if (len < 4) break;
    out.push([buf.readUInt16LE(at + 2) & ~NLA_F_NESTED, buf.subarray(at + 4, at + len)]);
    at += align4(len);
  }
  return out;
}

const value = (data: Buffer | undefined) => attrList(data ?? Buffer.alloc(0)).find(([t]) => t === NFTA_DATA_VALUE)?.[1];

export interface DumpedElement {
  key: Buffer;
  keyEnd?: Buffer;
  /** Packets of the element's counter, when it has one. */
  packets?: number;
}

function counterPackets(expr: Buffer): number | undefined {
  const a = new Map(attrList(expr));
  if (a.get(NFTA_EXPR.NAME)?.toString('latin1').replace(/\0.*$/, '') !== 'counter') return undefined;
  const packets = new Map(attrList(a.get(NFTA_EXPR.DATA) ?? Buffer.alloc(0))).get(NFTA_COUNTER_PACKETS);
  return packets ? Number(packets.readBigUInt64BE(0)) : undefined;
}

/** The elements a NEWSETELEM message (a GET or dump answer) carries. */
export function parseElements(body: Buffer): DumpedElement[] {
  const list = attrList(body).find(([t]) => t === NFTA_SET_ELEM_LIST.ELEMENTS)?.[1];
  if (!list) return [];
  return attrList(list).map(([, elem]) => {
    const a = new Map(attrList(elem));
    // Copies: the answer's buffer is reused by the next receive.
    const key = Buffer.from(value(a.get(NFTA_SET_ELEM.KEY)) ?? Buffer.alloc(0));
    const end = value(a.get(NFTA_SET_ELEM.KEY_END));
    const keyEnd = end && Buffer.from(end);
    const exprs = a.has(NFTA_SET_ELEM.EXPR)
      ? [a.get(NFTA_SET_ELEM.EXPR)!]
      : attrList(a.get(NFTA_SET_ELEM.EXPRESSIONS) ?? Buffer.alloc(0)).map(([, e]) => e);
    const packets = exprs.map(counterPackets).find((p) => p !== undefined);
    return { key, ...(keyEnd ? { keyEnd } : {}), ...(packets !== undefined ? { packets } : {}) };
  });
}

// --- The socket ------------------------------------------------------------------------------------------------------

function failure(what: string, errno: number): LidError {
  const name = sys.errnoName(errno);
  return new LidError('setup_failed', `nf_tables: ${what} failed: ${name}`, { errno: name });
}

/** A NETLINK_NETFILTER socket in the network namespace the calling thread was in when it opened it. */
export class NfNetlink {
  private seq = 1;
  private readonly fd = sys.netlinkSocket(NETLINK_NETFILTER);
  /** One receive buffer for the socket's life: what a caller keeps of an answer is copied out of it. */
  private readonly buf = Buffer.alloc(64 * 1024);

  private receive(): NfReply[] {
    return parseNfReplies(sys.netlinkReceive(this.fd, this.buf));
  }

  /**
   * Applies the changes as one transaction; throws a LidError (details.errno) if the kernel refused any of them (or
   * the batch itself), in which case none applied. Answers still queued from an earlier batch are told apart by seq.
   */
  apply(changes: ElementChange[], what: string): void {
    if (!changes.length) return;
    const begin = this.seq;
    const last = begin + changes.length;
    const batch = batchMessage(begin, changes);
    this.seq = last + 2;
    sys.netlinkSend(this.fd, batch);
    for (;;) {
      for (const r of this.receive()) {
        if (r.type !== NLMSG_ERROR || r.seq < begin || r.seq > last + 1) continue;
        if (r.errno) throw failure(what, r.errno);
        if (r.seq === last) return;
      }
    }
  }

  /** One element by key, or null when the set has none. */
  get(ref: ElementRef, key: Buffer, what: string): DumpedElement | null {
    const seq = this.seq++;
    sys.netlinkSend(this.fd, getElementMessage(seq, ref, key));
    for (;;) {
      for (const r of this.receive()) {
        if (r.seq !== seq) continue;
        if (r.type === NLMSG_ERROR) {
          if (r.errno === 2 /* ENOENT */) return null;
          throw failure(what, r.errno ?? 0);
        }
        return parseElements(r.body)[0] ?? null;
      }
    }
  }

  /** Every element of the set. */
  dump(ref: ElementRef, what: string): DumpedElement[] {
    const seq = this.seq++;
    sys.netlinkSend(this.fd, dumpElementsMessage(seq, ref));
    const out: DumpedElement[] = [];
    for (;;) {
      for (const r of this.receive()) {
        if (r.seq !== seq) continue;
        if (r.type === NLMSG_DONE) return out;
        if (r.type === NLMSG_ERROR) throw failure(what, r.errno ?? 0);
        out.push(...parseElements(r.body));
      }
    }
  }

  close(): void {
    sys.close(this.fd);
  }
}
