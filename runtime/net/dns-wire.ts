// The DNS wire format (RFC 1035 section 4, EDNS from RFC 6891) as Lid's sandbox resolver needs it: the header, the
// question, and where each resource record sits, read straight from the bytes. It is not a general DNS library
// (the tests use dns-packet for that) because the resolver forwards upstream answers byte for byte and must know
// two things a decoder hides: exact label boundaries, and the offset of each TTL. A label may contain a "." byte:
// the one-label name "a.example" under "com" is not a.example.com, yet a decoder that joins labels with "." makes it
// look so and would let it match a rule for *.example.com; here such a byte is spelled \046 and never matches a
// rule. TTLs are capped in place, so nothing the upstream sent is re-encoded or lost. Every read is bounds-checked;
// a malformed message throws DnsFormatError.

export class DnsFormatError extends Error {
  override name = 'DnsFormatError';
}

export const TYPE = { A: 1, CNAME: 5, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252 } as const;
export const CLASS_IN = 1;
export const OPCODE_QUERY = 0;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const FLAG = { QR: 0x8000, TC: 0x0200, RD: 0x0100, RA: 0x0080, CD: 0x0010 } as const;

const HEADER_BYTES = 12;
const MAX_NAME_BYTES = 255;
/** The UDP payload size Lid's replies advertise: the DNS flag day 2020 value, which avoids IP fragmentation. */
export const OUR_EDNS_UDP_SIZE = 1232;

export interface DnsRecord {
  section: 'answer' | 'authority' | 'additional';
  /** Canonical form: lowercase ASCII, labels joined by ".", no trailing dot, odd bytes as \DDD; the root is "". */
  name: string;
  type: number;
  klass: number;
  ttl: number;
  ttlOffset: number;
  rdataOffset: number;
  rdlength: number;
}

export interface DnsMessage {
  id: number;
  flags: number;
  opcode: number;
  rcode: number;
  isResponse: boolean;
  truncated: boolean;
  qdcount: number;
  ancount: number;
  nscount: number;
  /** The first question (names canonical as in DnsRecord). */
  question?: { name: string; type: number; klass: number };
  /** Where the question section ends (12 when there is none). */
  questionEnd: number;
  records: DnsRecord[];
  /** Bytes the message uses; anything after is not part of it. */
  end: number;
  /** The UDP payload size of the sender's EDNS OPT record, when it has one. */
  ednsUdpSize?: number;
}

function need(buf: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > buf.length) throw new DnsFormatError(`message ends inside a field at byte ${offset}`);
}

function canonicalLabel(label: Buffer): string {
  let out = '';
  for (const b of label) {
    const lower = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
    // Letters, digits, "-" and "_" as they are; everything else (".", "\", spaces, non-ASCII) as \DDD.
    const plain =
      (lower >= 0x61 && lower <= 0x7a) || (lower >= 0x30 && lower <= 0x39) || lower === 0x2d || lower === 0x5f;
    out += plain ? String.fromCharCode(lower) : `\\${String(lower).padStart(3, '0')}`;
  }
  return out;
}

/**
 * The name at `offset` and where it ends in place (after its first compression pointer, if any). A pointer must point
 * strictly before the start of the run of labels it ends (as dns-packet checks), so following pointers always ends.
 */
export function readName(buf: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  let hopStart = offset;
  let end: number | undefined;
  let wireBytes = 1;
  while (true) {
    need(buf, pos, 1);
    const len = buf[pos]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      need(buf, pos, 2);
      const target = buf.readUInt16BE(pos) & 0x3fff;
      if (target >= hopStart) throw new DnsFormatError(`compression pointer at byte ${pos} does not point backwards`);
      end ??= pos + 2;
      pos = hopStart = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError(`unknown label type at byte ${pos}`);
    need(buf, pos + 1, len);
    wireBytes += len + 1;
    if (wireBytes > MAX_NAME_BYTES) throw new DnsFormatError(`name at byte ${offset} is longer than 255 bytes`);
    labels.push(canonicalLabel(buf.subarray(pos + 1, pos + 1 + len)));
    pos += len + 1;
  }
  return { name: labels.join('.'), end: end ?? pos + 1 };
}

/** Reads a whole message: header, questions and every record. Throws DnsFormatError if it is malformed. */
export function parseMessage(buf: Buffer): DnsMessage {
  need(buf, 0, HEADER_BYTES);
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  const nscount = buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);
  const msg: DnsMessage = {
    id: buf.readUInt16BE(0),
    flags,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    isResponse: (flags & FLAG.QR) !== 0,
    truncated: (flags & FLAG.TC) !== 0,
    qdcount,
    ancount,
    nscount,
    questionEnd: HEADER_BYTES,
    records: [],
    end: HEADER_BYTES,
  };
  let pos = HEADER_BYTES;
  for (let i = 0; i < qdcount; i++) {
    const { name, end } = readName(buf, pos);
    need(buf, end, 4);
    msg.question ??= { name, type: buf.readUInt16BE(end), klass: buf.readUInt16BE(end + 2) };
    pos = end + 4;
  }
  msg.questionEnd = pos;
  const sections = [
    ['answer', ancount],
    ['authority', nscount],
    ['additional', arcount],
  ] as const;
  for (const [section, count] of sections) {
    for (let i = 0; i < count; i++) {
      const { name, end } = readName(buf, pos);
      need(buf, end, 10);
      const type = buf.readUInt16BE(end);
      const klass = buf.readUInt16BE(end + 2);
      const rdlength = buf.readUInt16BE(end + 8);
      need(buf, end + 10, rdlength);
      const record: DnsRecord = {
        section,
        name,
        type,
        klass,
        ttl: buf.readUInt32BE(end + 4),
        ttlOffset: end + 4,
        rdataOffset: end + 10,
        rdlength,
      };
      msg.records.push(record);
      // An OPT record's class is the sender's UDP payload size (RFC 6891 section 6.1.2).
      if (section === 'additional' && type === TYPE.OPT && name === '') msg.ednsUdpSize ??= klass;
      pos = end + 10 + rdlength;
    }
  }
  msg.end = pos;
  return msg;
}

/** The target of a CNAME record, which must lie within the record's data. */
export function cnameTarget(buf: Buffer, record: DnsRecord): string {
  const { name, end } = readName(buf, record.rdataOffset);
  if (end > record.rdataOffset + record.rdlength) throw new DnsFormatError('CNAME target overruns its record');
  return name;
}

/** The dotted address of an A record, or undefined if its data is not 4 bytes. */
export function aAddress(buf: Buffer, record: DnsRecord): string | undefined {
  if (record.rdlength !== 4) return undefined;
  return [...buf.subarray(record.rdataOffset, record.rdataOffset + 4)].join('.');
}

/** An OPT record with no options: root name, type 41, our UDP size, extended rcode 0, version 0, no flags. */
function optRecord(): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(TYPE.OPT, 1);
  opt.writeUInt16BE(OUR_EDNS_UDP_SIZE, 3);
  return opt;
}

/**
 * A reply made of the header and the question section of `msg` (its bytes echoed exactly, as clients compare them),
 * with the given flags and rcode, and an OPT record when the query had one (RFC 6891 section 7). Used for every
 * answer the resolver makes itself (REFUSED, NXDOMAIN, an empty AAAA answer, SERVFAIL) and for truncated replies.
 */
export function headerOnlyReply(
  buf: Buffer,
  msg: DnsMessage,
  opts: { rcode: number; extraFlags?: number; withQuestion?: boolean },
): Buffer {
  const withQuestion = opts.withQuestion ?? true;
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(msg.id, 0);
  const flags =
    FLAG.QR | (msg.opcode << 11) | (msg.flags & (FLAG.RD | FLAG.CD)) | FLAG.RA | (opts.extraFlags ?? 0) | opts.rcode;
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(withQuestion ? msg.qdcount : 0, 4);
  const opt = msg.ednsUdpSize !== undefined ? optRecord() : undefined;
  header.writeUInt16BE(opt ? 1 : 0, 10);
  const question = withQuestion ? buf.subarray(HEADER_BYTES, msg.questionEnd) : Buffer.alloc(0);
  return Buffer.concat(opt ? [header, question, opt] : [header, question]);
}

/** FORMERR for a query whose question could not even be read: the header alone, with the query's id. */
export function formatErrorReply(buf: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(buf.readUInt16BE(0), 0);
  const opcode = (buf.readUInt16BE(2) >> 11) & 0xf;
  header.writeUInt16BE(FLAG.QR | (opcode << 11) | FLAG.RA | RCODE.FORMERR, 2);
  return header;
}

/**
 * An upstream reply made ready for the sandbox: the sandbox's query id, RA set, and (when `ttlCap` is given) every
 * answer TTL above the cap lowered to it, so that a sandbox that caches an address forgets it no later than the
 * firewall does. A copy; nothing else changes.
 */
export function rewriteReply(reply: Buffer, msg: DnsMessage, id: number, ttlCap?: number): Buffer {
  const out = Buffer.from(reply.subarray(0, msg.end));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(out.readUInt16BE(2) | FLAG.RA, 2);
  if (ttlCap !== undefined)
    for (const r of msg.records) if (r.section === 'answer' && r.ttl > ttlCap) out.writeUInt32BE(ttlCap, r.ttlOffset);
  return out;
}
