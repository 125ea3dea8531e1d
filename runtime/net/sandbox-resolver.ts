// Lid's DNS resolver for networked sandboxes: it listens on lid0's address (port 53, UDP and TCP), knows each
// sandbox's policy by the query's source address, and is the only way a sandbox under an allowlist learns an address:
// names no domain rule allows get NXDOMAIN without a packet leaving the host (so a sandbox cannot tunnel data out
// through queries for names of its choosing); allowed ones are forwarded to the upstream servers, and every address
// the answer grants is handed to `allow` (which adds it to the firewall's `allow` set for that sandbox, with the TTL)
// and awaited before the reply goes out, so the sandbox's first connect already finds it. Internet sandboxes get any
// name; AAAA gets an empty answer (sandboxes have no IPv6); unknown sources and 'none' get REFUSED.
//
// Upstream answers are forwarded byte for byte (dns-wire.ts says why), with the sandbox's id, RA set, and answer
// TTLs capped for allowlisted sandboxes. Every query runs on its own: one slow upstream answer never holds up
// another client, nor another query on the same TCP connection (replies may come out of order, RFC 7766 section
// 6.2.1.1). Bounded: in-flight upstream queries are capped in all and per source, beyond which a UDP query is
// dropped (the client retries) and a TCP one gets SERVFAIL; TCP connections are capped and closed when idle.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import type { NetworkPolicy, PortRange } from '../../common/network-policy.js';
import { decideQuery, grantedAddresses, MAX_GRANT_TTL_SECONDS } from './dns-policy.js';
import { type Endpoint, exchangeTcp, exchangeUdp, frame, FrameReader } from './dns-transport.js';
import {
  CLASS_IN,
  type DnsMessage,
  FLAG,
  formatErrorReply,
  headerOnlyReply,
  OPCODE_QUERY,
  parseMessage,
  RCODE,
  rewriteReply,
  TYPE,
} from './dns-wire.js';

export interface ResolverOptions {
  /** lid0's address, port 53 in production. */
  listen: Endpoint;
  /** Tried in order, each with `timeoutMs`. */
  upstreams: Endpoint[];
  /** The policy of the sandbox with this source address, or undefined (unknown sources get REFUSED). */
  policyFor(source: string): NetworkPolicy | undefined;
  /**
   * Called for each A record of an allowed answer (allowlisted sandboxes only), and awaited, BEFORE the reply is sent
   * (so the first connect works). ports: the ports of the matching domain rule, once per distinct range. If it
   * throws, the sandbox gets SERVFAIL.
   */
  allow(source: string, address: string, ports: PortRange, ttlSeconds: number): void | Promise<void>;
  /** Per upstream query, default 2000. */
  timeoutMs?: number;
  /** Upstream queries in flight at once, default 256; beyond, queries are dropped (UDP) or get SERVFAIL (TCP). */
  maxInFlight?: number;
  /** ...and per source address, default 64, so one sandbox cannot take them all. */
  maxInFlightPerSource?: number;
  /** TCP connections at once, default 256; beyond, new ones are closed at once. */
  maxTcpConnections?: number;
  /** A TCP connection with no query for this long is closed, default 10000 (RFC 7766 suggests seconds). */
  tcpIdleMs?: number;
}

/** Queries one TCP connection may have in flight before we stop reading it. */
const TCP_PIPELINE_DEPTH = 32;
/** A UDP reply without EDNS may be at most 512 bytes (RFC 1035 section 4.2.1); with EDNS, what the client says, capped. */
const CLASSIC_UDP_SIZE = 512;
const MAX_UDP_REPLY = 4096;

export class SandboxResolver {
  private readonly aborter = new AbortController();
  private readonly connections = new Set<net.Socket>();
  private readonly inFlightBySource = new Map<string, number>();
  /** Queries being answered, awaited by close() so that no allow() call runs after it. */
  private readonly tasks = new Set<Promise<unknown>>();
  private inFlight = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly opts: Required<ResolverOptions>,
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
  ) {
    // Each upstream exchange listens for the abort: as many listeners as queries in flight.
    setMaxListeners(0, this.aborter.signal);
  }

  static async start(options: ResolverOptions): Promise<SandboxResolver> {
    const opts: Required<ResolverOptions> = {
      timeoutMs: 2000,
      maxInFlight: 256,
      maxInFlightPerSource: 64,
      maxTcpConnections: 256,
      tcpIdleMs: 10_000,
      ...options,
    };
    for (const key of ['timeoutMs', 'maxInFlight', 'maxInFlightPerSource', 'maxTcpConnections', 'tcpIdleMs'] as const)
      if (!Number.isInteger(opts[key]) || opts[key] <= 0) throw new RangeError(`${key} must be a positive integer`);
    if (opts.upstreams.length === 0) throw new RangeError('upstreams must name at least one DNS server');
    for (const e of [opts.listen, ...opts.upstreams])
      if (net.isIP(e.address) === 0 || !Number.isInteger(e.port) || e.port < 0 || e.port > 65535)
        throw new RangeError(`${e.address}:${e.port} is not an IP address and port`);

    const udp = dgram.createSocket(net.isIPv6(opts.listen.address) ? 'udp6' : 'udp4');
    const tcp = net.createServer();
    const resolver = new SandboxResolver(opts, udp, tcp);
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(opts.listen.port, opts.listen.address, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: opts.listen.address, port: opts.listen.port }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      await resolver.close();
      throw e;
    }
    // A failed send to one client (it went away) is no reason to stop serving the others.
    udp.on('error', () => {});
    udp.on('message', (query, from) => void resolver.onUdp(query, from));
    tcp.on('connection', (socket) => resolver.onTcp(socket));
    return resolver;
  }

  private async onUdp(query: Buffer, from: dgram.RemoteInfo): Promise<void> {
    const reply = await this.answer(query, plainAddress(from.address), 'udp');
    if (!reply || this.aborter.signal.aborted) return;
    try {
      this.udp.send(reply, from.port, from.address);
    } catch {
      // The socket closed meanwhile.
    }
  }

  private onTcp(socket: net.Socket): void {
    if (this.connections.size >= this.opts.maxTcpConnections) return void socket.destroy();
    this.connections.add(socket);
    const source = plainAddress(socket.remoteAddress ?? '');
    const reader = new FrameReader();
    let pending = 0;
    // A client that pipelines queries faster than it reads replies is read no further until it catches up, so
    // neither its queries nor our unsent replies pile up without bound.
    const throttle = () => {
      if (pending >= TCP_PIPELINE_DEPTH || socket.writableNeedDrain) socket.pause();
      else socket.resume();
    };
    socket.setTimeout(this.opts.tcpIdleMs, () => {
      if (pending === 0) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    socket.on('drain', throttle);
    socket.on('data', (chunk) => {
      for (const query of reader.push(chunk)) {
        pending++;
        void this.answer(query, source, 'tcp').then((reply) => {
          pending--;
          if (reply && socket.writable) socket.write(frame(reply));
          throttle();
        });
      }
      throttle();
    });
  }

  /** The reply to one query from `source`, or undefined to send nothing. Never throws. */
  private async answer(query: Buffer, source: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const task = this.answerOrThrow(query, source, transport).catch(() => undefined);
    this.tasks.add(task);
    try {
      return await task;
    } finally {
      this.tasks.delete(task);
    }
  }

  private async answerOrThrow(query: Buffer, source: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    // Too short to hold an id, or a response (never answer one: two resolvers must not ping-pong).
    if (query.length < 12 || (query.readUInt16BE(2) & FLAG.QR) !== 0) return undefined;
    let msg: DnsMessage;
    try {
      msg = parseMessage(query);
    } catch {
      return formatErrorReply(query);
    }
    const q = msg.question;
    if (msg.opcode !== OPCODE_QUERY) return headerOnlyReply(query, msg, { rcode: RCODE.NOTIMP });
    if (!q || msg.qdcount !== 1 || msg.ancount !== 0 || msg.nscount !== 0)
      return headerOnlyReply(query, msg, { rcode: RCODE.FORMERR });
    if (q.klass !== CLASS_IN || q.type === TYPE.AXFR || q.type === TYPE.IXFR)
      return headerOnlyReply(query, msg, { rcode: RCODE.NOTIMP });

    const decision = decideQuery(this.policyOf(source), q.name, q.type);
    if (decision.kind === 'refuse') return headerOnlyReply(query, msg, { rcode: RCODE.REFUSED });
    if (decision.kind === 'nxdomain') return headerOnlyReply(query, msg, { rcode: RCODE.NXDOMAIN });
    if (decision.kind === 'empty') return headerOnlyReply(query, msg, { rcode: RCODE.NOERROR });

    const forSource = this.inFlightBySource.get(source) ?? 0;
    if (this.inFlight >= this.opts.maxInFlight || forSource >= this.opts.maxInFlightPerSource)
      return transport === 'tcp' ? headerOnlyReply(query, msg, { rcode: RCODE.SERVFAIL }) : undefined;
    this.inFlight++;
    this.inFlightBySource.set(source, forSource + 1);
    try {
      const upstream = await this.askUpstreams(query.subarray(0, msg.end), msg, transport);
      if (!upstream) return headerOnlyReply(query, msg, { rcode: RCODE.SERVFAIL });
      const { reply, replyMsg } = upstream;
      if (decision.ports) {
        // The policy is asked again: the sandbox may have ended while the upstream answered, and its address gone
        // to another sandbox. Grants follow the policy of the source as it is now.
        const now = decideQuery(this.policyOf(source), q.name, q.type);
        if (now.kind !== 'forward' || !now.ports) return headerOnlyReply(query, msg, { rcode: RCODE.REFUSED });
        const granted = replyMsg.rcode === RCODE.NOERROR ? grantedAddresses(reply, replyMsg, q.name) : [];
        const ports = now.ports;
        await Promise.all(granted.flatMap((g) => ports.map(async (p) => this.opts.allow(source, g.address, p, g.ttl))));
      }
      const out = rewriteReply(reply, replyMsg, msg.id, decision.ports ? MAX_GRANT_TTL_SECONDS : undefined);
      if (transport === 'udp' && out.length > udpLimit(msg))
        return headerOnlyReply(query, msg, { rcode: replyMsg.rcode, extraFlags: FLAG.TC });
      return out;
    } catch {
      // allow() failed (the address could not be let through) or the resolver is closing.
      return headerOnlyReply(query, msg, { rcode: RCODE.SERVFAIL });
    } finally {
      this.inFlight--;
      const left = (this.inFlightBySource.get(source) ?? 1) - 1;
      if (left === 0) this.inFlightBySource.delete(source);
      else this.inFlightBySource.set(source, left);
    }
  }

  private policyOf(source: string): NetworkPolicy | undefined {
    try {
      return this.opts.policyFor(source);
    } catch {
      return undefined;
    }
  }

  /**
   * The first usable reply from the upstreams, tried in order: over UDP (and over TCP from the same server when a
   * TCP client's answer came back truncated); a server that fails, times out or answers SERVFAIL, NOTIMP or REFUSED
   * is passed over, as stub resolvers do. Undefined when none answers.
   */
  private async askUpstreams(
    query: Buffer,
    msg: DnsMessage,
    transport: 'udp' | 'tcp',
  ): Promise<{ reply: Buffer; replyMsg: DnsMessage } | undefined> {
    const outgoing = Buffer.from(query);
    const id = randomInt(0x10000);
    outgoing.writeUInt16BE(id, 0);
    let replyMsg: DnsMessage | undefined;
    const accept = (reply: Buffer) => {
      replyMsg = matchingReply(reply, id, msg);
      return replyMsg !== undefined;
    };
    const { timeoutMs } = this.opts;
    const signal = this.aborter.signal;
    for (const server of this.opts.upstreams) {
      if (signal.aborted) return undefined;
      try {
        let reply = await exchangeUdp(server, outgoing, accept, timeoutMs, signal);
        if (transport === 'tcp' && replyMsg!.truncated)
          reply = await exchangeTcp(server, outgoing, accept, timeoutMs, signal);
        const rcode = replyMsg!.rcode;
        if (rcode === RCODE.SERVFAIL || rcode === RCODE.NOTIMP || rcode === RCODE.REFUSED) continue;
        return { reply, replyMsg: replyMsg! };
      } catch {
        continue;
      }
    }
    return undefined;
  }

  /** Stops listening, drops TCP connections and abandons queries in flight. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.aborter.abort();
      // Upstream exchanges end at once on abort; what is left is allow() calls under way.
      await Promise.allSettled([...this.tasks]);
      try {
        await new Promise<void>((resolve) => this.udp.close(() => resolve()));
      } catch {
        // Not bound (start failed) or already closed.
      }
      try {
        for (const socket of this.connections) socket.destroy();
        await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
      } catch {
        // Not listening.
      }
    })();
    return this.closing;
  }
}

/** The reply's parsed form if it answers our query (response, our id, the same question), else undefined. */
function matchingReply(reply: Buffer, id: number, query: DnsMessage): DnsMessage | undefined {
  try {
    const m = parseMessage(reply);
    const q = m.question;
    const asked = query.question!;
    const same = q !== undefined && q.name === asked.name && q.type === asked.type && q.klass === asked.klass;
    return m.isResponse && m.id === id && m.qdcount === 1 && same ? m : undefined;
  } catch {
    return undefined;
  }
}

function udpLimit(query: DnsMessage): number {
  const size = query.ednsUdpSize;
  return size === undefined ? CLASSIC_UDP_SIZE : Math.min(Math.max(size, CLASSIC_UDP_SIZE), MAX_UDP_REPLY);
}

/** A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; policies know them as a.b.c.d. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}
