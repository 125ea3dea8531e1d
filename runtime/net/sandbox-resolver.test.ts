// The sandbox resolver with real packets on loopback: a fake upstream DNS server (dns-packet, UDP and TCP), the
// resolver, and clients whose sockets are bound to chosen source addresses so policyFor tells sandboxes apart. All on
// one random 127.A.B.0/24 block picked per run (every address in 127/8 is this host's own loopback), high ports; no
// real name is resolved and no real server contacted (names are under .test, RFC 2606).
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket, type Packet, type RecordType } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileNetwork, type NetworkPolicy, type PortRange } from '../../common/network-policy.js';
import { frame, FrameReader } from './dns-transport.js';
import { type ResolverOptions, SandboxResolver } from './sandbox-resolver.js';

const BLOCK = `127.${100 + Math.floor(Math.random() * 150)}.${Math.floor(Math.random() * 256)}`;
const RESOLVER = `${BLOCK}.1`;
const UPSTREAM = `${BLOCK}.2`;
const SILENT = `${BLOCK}.3`;
const CLOSED = `${BLOCK}.4`;
const ALLOWLISTED = `${BLOCK}.10`;
const INTERNET = `${BLOCK}.11`;
const NONE = `${BLOCK}.12`;
const UNKNOWN = `${BLOCK}.13`;
const ALLOWLISTED_2 = `${BLOCK}.14`;
const REUSED = `${BLOCK}.15`;

const POLICIES = new Map<string, NetworkPolicy>([
  [
    ALLOWLISTED,
    compileNetwork({
      allow: ['*.example.test', 'cname.allowed.test:443', 'api.allowed.test:443', 'api.allowed.test:8000-8100'],
    }),
  ],
  [ALLOWLISTED_2, compileNetwork({ allow: ['*.example.test'] })],
  [INTERNET, compileNetwork('internet')],
  [NONE, compileNetwork('none')],
]);

type Reply = DecodedPacket & { rcode: string };
const a = (name: string, data: string, ttl = 300): Answer => ({ type: 'A', name, data, ttl, class: 'IN' });

/** The fake upstream's zone: what it answers for each name. */
function zone(name: string): { answers: Answer[]; rcode?: number; delayMs?: number } {
  switch (name.toLowerCase()) {
    case 'a.example.test':
      return { answers: [a(name, '192.0.2.1', 300), a(name, '192.0.2.2', 0)] };
    case 'b.a.example.test':
      return { answers: [a(name, '192.0.2.3', 100_000)] };
    case 'example.test':
      return { answers: [a(name, '192.0.2.9')] };
    case 'api.allowed.test':
      return { answers: [a(name, '192.0.2.20', 30)] };
    case 'cname.allowed.test':
      return {
        answers: [
          // The chain out of order, and an address for an unrelated name riding along (cache-poisoning style).
          a('target.cdn.test', '198.51.100.7', 60),
          { type: 'CNAME', name, data: 'target.cdn.test', ttl: 120, class: 'IN' },
          a('victim.other.test', '203.0.113.66', 600),
        ],
      };
    case 'poison.example.test':
      return { answers: [a('evil.test', '203.0.113.99', 600)] };
    case 'big.example.test':
      return { answers: Array.from({ length: 40 }, (_, i) => a(name, `192.0.2.${100 + i}`, 60)) };
    case 'slow.example.test':
      return { answers: [a(name, '192.0.2.30')], delayMs: 800 };
    case 'hold.example.test':
      return { answers: [a(name, '192.0.2.31')], delayMs: 500 };
    case 'txt.example.test':
      return { answers: [{ type: 'TXT', name, data: ['hello'], ttl: 60, class: 'IN' }] };
    case 'missing.example.test':
      return { answers: [], rcode: 3 };
    default:
      return { answers: [a(name, '192.0.2.77')] };
  }
}

/** A DNS server for `zone` on UDP and TCP, recording every question it is asked. */
class FakeUpstream {
  readonly seen: { name: string; type: string; transport: 'udp' | 'tcp' }[] = [];
  private constructor(
    readonly address: string,
    readonly port: number,
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
  ) {}

  static async start(address: string): Promise<FakeUpstream> {
    const { udp, tcp, port } = await bindBoth(address);
    const server = new FakeUpstream(address, port, udp, tcp);
    udp.on('message', (msg, from) => {
      void server.respond(msg, 'udp').then((rs) => {
        for (const r of rs) udp.send(r, from.port, from.address);
      });
    });
    tcp.on('connection', (socket) => {
      const reader = new FrameReader();
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        for (const msg of reader.push(chunk))
          void server.respond(msg, 'tcp').then((rs) => socket.writable && socket.write(frame(rs.at(-1)!)));
      });
    });
    return server;
  }

  /** The datagrams to send back: the answer, after a forged one for forged.example.test. */
  private async respond(msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer[]> {
    const query = dnsPacket.decode(msg);
    const q = query.questions![0]!;
    this.seen.push({ name: q.name.toLowerCase(), type: q.type, transport });
    const { answers, rcode = 0, delayMs = 0 } = zone(q.name);
    if (delayMs) await sleep(delayMs);
    const reply = (id: number, ans: Answer[]) =>
      dnsPacket.encode({
        type: 'response',
        id,
        flags: dnsPacket.RECURSION_DESIRED | rcode,
        questions: [q],
        answers: ans,
      });
    const real = reply(query.id!, q.type === 'A' || q.type === 'TXT' ? answers : []);
    // For this name, a forged reply (wrong id) first, then the real one: only the real one may count.
    if (q.name === 'forged.example.test') return [reply(query.id! ^ 1, [a(q.name, '203.0.113.13')]), real];
    return [real];
  }

  seenName(name: string): boolean {
    return this.seen.some((s) => s.name === name);
  }

  async close(): Promise<void> {
    this.udp.close();
    await new Promise((r) => this.tcp.close(r));
  }
}

async function bindBoth(address: string): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const udp = dgram.createSocket('udp4');
    const tcp = net.createServer();
    try {
      await new Promise<void>((res, rej) => (udp.once('error', rej), udp.bind(port, address, () => res())));
      await new Promise<void>((res, rej) => (tcp.once('error', rej), tcp.listen(port, address, () => res())));
      return { udp, tcp, port };
    } catch (e) {
      udp.close();
      tcp.close();
      if (attempt > 20) throw e;
    }
  }
}

async function startResolver(
  extra: Partial<ResolverOptions> = {},
): Promise<{ resolver: SandboxResolver; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    try {
      const resolver = await SandboxResolver.start({
        listen: { address: RESOLVER, port },
        upstreams: [{ address: UPSTREAM, port: upstream.port }],
        policyFor: (source) => POLICIES.get(source),
        allow: recordAllow,
        ...extra,
      });
      return { resolver, port };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 20) throw e;
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AllowCall {
  source: string;
  address: string;
  ports: PortRange;
  ttl: number;
  doneAt: number;
}
let allowCalls: AllowCall[] = [];
async function recordAllow(source: string, address: string, ports: PortRange, ttl: number): Promise<void> {
  await sleep(50); // as a netlink round trip would take time: the reply must wait for it
  allowCalls.push({ source, address, ports, ttl, doneAt: performance.now() });
}

let query_id = 1;
function query(name: string, type: RecordType = 'A', extra: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: query_id++ & 0xffff,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    ...extra,
  });
}

/** Sends one datagram from `from` to the resolver; the reply (or undefined after `waitMs`) and when it came. */
async function udpAsk(
  from: string,
  packet: Buffer,
  port = resolverPort,
  waitMs = 3000,
): Promise<{ reply: Reply; raw: Buffer; at: number } | undefined> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, from, () => r()));
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
      socket.on('message', (raw) => {
        clearTimeout(timer);
        resolve({ reply: dnsPacket.decode(raw) as Reply, raw, at: performance.now() });
      });
      socket.send(packet, port, RESOLVER);
    });
  } finally {
    socket.close();
  }
}

/** Sends several queries on one TCP connection from `from`; the replies in the order they came. */
async function tcpAsk(from: string, packets: Buffer[], port = resolverPort): Promise<Reply[]> {
  const socket = net.connect({ host: RESOLVER, port, localAddress: from });
  const reader = new FrameReader();
  const replies: Reply[] = [];
  try {
    return await new Promise((resolve, reject) => {
      socket.on('error', reject);
      socket.on('close', () => reject(new Error(`closed after ${replies.length} of ${packets.length} replies`)));
      socket.on('data', (chunk) => {
        for (const m of reader.push(chunk)) replies.push(dnsPacket.decode(m) as Reply);
        if (replies.length === packets.length) resolve(replies);
      });
      socket.on('connect', () => socket.write(Buffer.concat(packets.map(frame))));
    });
  } finally {
    socket.destroy();
  }
}

const addresses = (r: Reply) =>
  (r.answers ?? []).filter((x) => x.type === 'A').map((x) => (x as { data: string }).data);

let upstream: FakeUpstream;
let resolver: SandboxResolver;
let resolverPort: number;

beforeAll(async () => {
  upstream = await FakeUpstream.start(UPSTREAM);
  ({ resolver, port: resolverPort } = await startResolver());
});

afterAll(async () => {
  await resolver?.close();
  await upstream?.close();
});

describe('allowlisted sandbox', () => {
  it('forwards an allowed name and lets each A address through, with its TTL, before the reply arrives', async () => {
    allowCalls = [];
    const q = query('a.example.test');
    const got = (await udpAsk(ALLOWLISTED, q))!;
    expect(got.reply.rcode).toBe('NOERROR');
    expect(got.reply.id).toBe(q.readUInt16BE(0));
    expect(got.reply.flag_ra).toBe(true);
    expect(addresses(got.reply).sort()).toEqual(['192.0.2.1', '192.0.2.2']);
    expect(allowCalls.map(({ doneAt: _, ...c }) => c).sort((x, y) => x.address.localeCompare(y.address))).toEqual([
      { source: ALLOWLISTED, address: '192.0.2.1', ports: [1, 65535], ttl: 300 },
      { source: ALLOWLISTED, address: '192.0.2.2', ports: [1, 65535], ttl: 1 }, // TTL 0 still lets the connect through
    ]);
    for (const c of allowCalls) expect(c.doneAt).toBeLessThan(got.at);
  });

  it('*.example.test matches a.example.test and b.a.example.test, not example.test; no upstream query for the latter', async () => {
    allowCalls = [];
    const deep = (await udpAsk(ALLOWLISTED, query('B.A.Example.Test.')))!;
    expect(deep.reply.rcode).toBe('NOERROR');
    expect(addresses(deep.reply)).toEqual(['192.0.2.3']);
    // The upstream's TTL of 100000 s is capped, in the grant and in the reply the sandbox may cache.
    expect(allowCalls.map((c) => [c.address, c.ttl])).toEqual([['192.0.2.3', 3600]]);
    expect((deep.reply.answers![0] as { ttl: number }).ttl).toBe(3600);

    const apex = (await udpAsk(ALLOWLISTED, query('example.test')))!;
    expect(apex.reply.rcode).toBe('NXDOMAIN');
    expect(upstream.seenName('example.test')).toBe(false);
  });

  it('a name no rule allows gets NXDOMAIN and the upstream never sees it', async () => {
    allowCalls = [];
    for (const name of ['exfiltrate-secret-data.attacker.test', 'example.test.attacker.test', 'notexample.test']) {
      const got = (await udpAsk(ALLOWLISTED, query(name)))!;
      expect(got.reply.rcode).toBe('NXDOMAIN');
      expect(got.reply.answers).toEqual([]);
      expect(upstream.seenName(name)).toBe(false);
    }
    expect(allowCalls).toEqual([]);
  });

  it('a label holding a "." byte is not a subdomain: evil + "a.example" + test does not match *.example.test', async () => {
    // Built by hand: dns-packet (like most decoders) would show this name as evil.a.example.test.
    const labels = ['evil', 'a.example', 'test'];
    const name = Buffer.concat([
      ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
      Buffer.from([0]),
    ]);
    const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    const raw = Buffer.concat([header, name, Buffer.from([0, 1, 0, 1])]);
    const got = (await udpAsk(ALLOWLISTED, raw))!;
    expect(got.reply.rcode).toBe('NXDOMAIN');
    expect(got.raw.subarray(12, raw.length)).toEqual(raw.subarray(12)); // the question echoed byte for byte
    expect(upstream.seen.some((s) => s.name.startsWith('evil'))).toBe(false);
  });

  it('follows a CNAME from an allowed name: the target A is let through, an unrelated owner A is not', async () => {
    allowCalls = [];
    const got = (await udpAsk(ALLOWLISTED, query('cname.allowed.test')))!;
    expect(got.reply.rcode).toBe('NOERROR');
    expect(allowCalls.map(({ doneAt: _, ...c }) => c)).toEqual([
      { source: ALLOWLISTED, address: '198.51.100.7', ports: [443, 443], ttl: 60 },
    ]);
    // Nothing is stripped from the reply: the sandbox sees what the upstream said, but only the chain was let through.
    expect(addresses(got.reply).sort()).toEqual(['198.51.100.7', '203.0.113.66']);
  });

  it('an answer whose A records belong to another name adds nothing', async () => {
    allowCalls = [];
    const got = (await udpAsk(ALLOWLISTED, query('poison.example.test')))!;
    expect(got.reply.rcode).toBe('NOERROR');
    expect(allowCalls).toEqual([]);
  });

  it('calls allow once per distinct port range of the matching rules', async () => {
    allowCalls = [];
    await udpAsk(ALLOWLISTED, query('api.allowed.test'));
    expect(allowCalls.map((c) => c.ports).sort()).toEqual([
      [443, 443],
      [8000, 8100],
    ]);
  });

  it('AAAA of an allowed name: NOERROR with no answer, without asking upstream', async () => {
    const got = (await udpAsk(ALLOWLISTED, query('a.example.test', 'AAAA')))!;
    expect(got.reply.rcode).toBe('NOERROR');
    expect(got.reply.answers).toEqual([]);
    expect(upstream.seen.some((s) => s.type === 'AAAA')).toBe(false);
  });

  it('other types are forwarded as they are and add no address; upstream NXDOMAIN passes through', async () => {
    allowCalls = [];
    const txt = (await udpAsk(ALLOWLISTED, query('txt.example.test', 'TXT')))!;
    expect(txt.reply.answers![0]!.type).toBe('TXT');
    const missing = (await udpAsk(ALLOWLISTED, query('missing.example.test')))!;
    expect(missing.reply.rcode).toBe('NXDOMAIN');
    expect(upstream.seenName('missing.example.test')).toBe(true);
    expect(allowCalls).toEqual([]);
  });

  it('ignores a reply with another id (a forged datagram) and uses the real one', async () => {
    allowCalls = [];
    const got = (await udpAsk(ALLOWLISTED, query('forged.example.test')))!;
    expect(addresses(got.reply)).toEqual(['192.0.2.77']);
    expect(allowCalls.map((c) => c.address)).toEqual(['192.0.2.77']);
  });
});

describe('other sandboxes', () => {
  it('internet: forwards any name and calls no allow (the internet set covers it)', async () => {
    allowCalls = [];
    const got = (await udpAsk(INTERNET, query('anything.else.test')))!;
    expect(got.reply.rcode).toBe('NOERROR');
    expect(addresses(got.reply)).toEqual(['192.0.2.77']);
    expect(upstream.seenName('anything.else.test')).toBe(true);
    expect(allowCalls).toEqual([]);
    const aaaa = (await udpAsk(INTERNET, query('anything.else.test', 'AAAA')))!;
    expect([aaaa.reply.rcode, aaaa.reply.answers]).toEqual(['NOERROR', []]);
  });

  it("unknown sources and 'none' get REFUSED, upstream unasked", async () => {
    for (const source of [UNKNOWN, NONE]) {
      const got = (await udpAsk(source, query(`refused-${source}.example.test`)))!;
      expect(got.reply.rcode).toBe('REFUSED');
      expect(upstream.seenName(`refused-${source}.example.test`)).toBe(false);
    }
  });
});

describe('protocol', () => {
  it('FORMERR for two questions or garbage, NOTIMP for another class or opcode, silence for a response', async () => {
    const two = dnsPacket.encode({
      type: 'query',
      id: 7,
      questions: [
        { type: 'A', name: 'a.example.test' },
        { type: 'A', name: 'b.a.example.test' },
      ],
    });
    expect((await udpAsk(ALLOWLISTED, two))!.reply.rcode).toBe('FORMERR');
    const garbage = Buffer.concat([Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([63, 1, 2])]);
    const formerr = (await udpAsk(ALLOWLISTED, garbage))!;
    expect([formerr.reply.id, formerr.reply.rcode]).toEqual([9, 'FORMERR']);
    const chaos = dnsPacket.encode({
      type: 'query',
      id: 8,
      questions: [{ type: 'TXT', name: 'version.bind', class: 'CH' }],
    });
    expect((await udpAsk(ALLOWLISTED, chaos))!.reply.rcode).toBe('NOTIMP');
    const status = query('a.example.test');
    status.writeUInt16BE(status.readUInt16BE(2) | (2 << 11), 2);
    expect((await udpAsk(ALLOWLISTED, status))!.reply.rcode).toBe('NOTIMP');
    const response = dnsPacket.encode({ type: 'response', id: 10, questions: [{ type: 'A', name: 'a.example.test' }] });
    expect(await udpAsk(ALLOWLISTED, response, resolverPort, 300)).toBeUndefined();
  });

  it('TCP: several queries on one connection, each answered with its id', async () => {
    const qs = [query('a.example.test'), query('example.test'), query('txt.example.test', 'TXT')];
    const replies = await tcpAsk(ALLOWLISTED, qs);
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(byId.get(qs[0]!.readUInt16BE(0))!.rcode).toBe('NOERROR');
    expect(byId.get(qs[1]!.readUInt16BE(0))!.rcode).toBe('NXDOMAIN');
    expect(byId.get(qs[2]!.readUInt16BE(0))!.answers![0]!.type).toBe('TXT');
  });

  it('a big answer over UDP without EDNS comes back truncated (TC), and whole over TCP', async () => {
    const udp = (await udpAsk(ALLOWLISTED, query('big.example.test')))!;
    expect(udp.reply.flag_tc).toBe(true);
    expect(udp.raw.length).toBeLessThanOrEqual(512);
    const [tcp] = await tcpAsk(ALLOWLISTED, [query('big.example.test')]);
    expect(tcp!.flag_tc).toBe(false);
    expect(addresses(tcp!)).toHaveLength(40);
    // With EDNS and a 4096-byte buffer the same answer fits in one datagram.
    const edns = query('big.example.test', 'A', {
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 4096,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    const big = (await udpAsk(ALLOWLISTED, edns))!;
    expect([big.reply.flag_tc, addresses(big.reply).length]).toEqual([false, 40]);
  });
});

describe('concurrency and failure', () => {
  it("a slow query does not hold up another client's, nor another query on the same TCP connection", async () => {
    const t0 = performance.now();
    const [slow, fast] = await Promise.all([
      udpAsk(ALLOWLISTED, query('slow.example.test')),
      sleep(20).then(() => udpAsk(ALLOWLISTED_2, query('a.example.test'))),
    ]);
    expect(fast!.at).toBeLessThan(slow!.at);
    expect(fast!.at - t0).toBeLessThan(500);
    const tcp = await tcpAsk(ALLOWLISTED, [query('slow.example.test'), query('a.example.test')]);
    expect(tcp.map((r) => r.questions![0]!.name)).toEqual(['a.example.test', 'slow.example.test']);
  });

  it('upstream silent: SERVFAIL after the timeout; refused: the next one is asked at once', async () => {
    const silent = dgram.createSocket('udp4');
    const closed = dgram.createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, SILENT, () => r()));
    await new Promise<void>((r) => closed.bind(0, CLOSED, () => r()));
    const closedPort = closed.address().port;
    await new Promise<void>((r) => closed.close(() => r())); // nothing listens there now: ICMP port unreachable
    const down = await startResolver({ upstreams: [{ address: SILENT, port: silent.address().port }], timeoutMs: 300 });
    const failover = await startResolver({
      upstreams: [
        { address: CLOSED, port: closedPort },
        { address: UPSTREAM, port: upstream.port },
      ],
      timeoutMs: 2000,
    });
    try {
      const t0 = performance.now();
      const got = (await udpAsk(ALLOWLISTED, query('a.example.test'), down.port))!;
      expect(got.reply.rcode).toBe('SERVFAIL');
      expect(got.at - t0).toBeGreaterThanOrEqual(290);
      expect(got.at - t0).toBeLessThan(1000);

      const t1 = performance.now();
      const ok = (await udpAsk(ALLOWLISTED, query('a.example.test'), failover.port))!;
      expect(ok.reply.rcode).toBe('NOERROR');
      expect(ok.at - t1).toBeLessThan(1000); // not the 2000 ms timeout
    } finally {
      await down.resolver.close();
      await failover.resolver.close();
      silent.close();
    }
  });

  it('caps queries in flight: beyond the cap UDP queries are dropped, not queued', async () => {
    const capped = await startResolver({ maxInFlight: 2 });
    try {
      const before = upstream.seen.filter((s) => s.name === 'hold.example.test').length;
      const results = await Promise.all(
        Array.from({ length: 5 }, () => udpAsk(INTERNET, query('hold.example.test'), capped.port, 1500)),
      );
      expect(results.filter(Boolean)).toHaveLength(2);
      expect(upstream.seen.filter((s) => s.name === 'hold.example.test').length - before).toBe(2);
    } finally {
      await capped.resolver.close();
    }
  });

  it('caps queries in flight per source: one sandbox cannot take every slot; over TCP the excess gets SERVFAIL', async () => {
    const capped = await startResolver({ maxInFlightPerSource: 1 });
    try {
      const [first, second, other] = await Promise.all([
        udpAsk(INTERNET, query('hold.example.test'), capped.port, 1500),
        sleep(50).then(() => udpAsk(INTERNET, query('hold.example.test'), capped.port, 1500)),
        sleep(50).then(() => udpAsk(ALLOWLISTED, query('hold.example.test'), capped.port, 1500)),
      ]);
      expect([first?.reply.rcode, second, other?.reply.rcode]).toEqual(['NOERROR', undefined, 'NOERROR']);
      const tcp = await tcpAsk(INTERNET, [query('hold.example.test'), query('hold.example.test')], capped.port);
      expect(tcp.map((r) => r.rcode)).toEqual(['SERVFAIL', 'NOERROR']); // the refused one answers at once
    } finally {
      await capped.resolver.close();
    }
  });

  it('caps TCP connections: beyond the cap a new one is closed at once', async () => {
    const capped = await startResolver({ maxTcpConnections: 1 });
    const first = net.connect({ host: RESOLVER, port: capped.port, localAddress: ALLOWLISTED });
    try {
      await new Promise((r) => first.on('connect', r));
      await sleep(50);
      await expect(tcpAsk(ALLOWLISTED, [query('a.example.test')], capped.port)).rejects.toThrow(
        /closed after 0|ECONNRESET|EPIPE/,
      );
      first.destroy();
      await sleep(50);
      const [ok] = await tcpAsk(ALLOWLISTED, [query('a.example.test')], capped.port);
      expect(ok!.rcode).toBe('NOERROR');
    } finally {
      first.destroy();
      await capped.resolver.close();
    }
  });

  it('allow() failing means SERVFAIL: the sandbox is not told an address it cannot reach', async () => {
    const failing = await startResolver({
      allow: () => {
        throw new Error('netlink said no');
      },
    });
    try {
      const got = (await udpAsk(ALLOWLISTED, query('a.example.test'), failing.port))!;
      expect([got.reply.rcode, got.reply.answers]).toEqual(['SERVFAIL', []]);
    } finally {
      await failing.resolver.close();
    }
  });

  it('the policy is asked again when the answer comes: a sandbox that ended meanwhile grants nothing', async () => {
    allowCalls = [];
    POLICIES.set(REUSED, compileNetwork({ allow: ['*.example.test'] }));
    const pending = udpAsk(REUSED, query('slow.example.test'));
    await sleep(200);
    POLICIES.set(REUSED, compileNetwork({ allow: ['other.test'] })); // its address went to another sandbox
    const got = (await pending)!;
    expect(got.reply.rcode).toBe('REFUSED');
    expect(allowCalls).toEqual([]);
  });

  it('closes an idle TCP connection, keeps one with a query in flight', async () => {
    const idle = await startResolver({ tcpIdleMs: 200 });
    try {
      const socket = net.connect({ host: RESOLVER, port: idle.port, localAddress: ALLOWLISTED });
      const t0 = performance.now();
      await new Promise((r) => socket.on('close', r));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
      expect(performance.now() - t0).toBeLessThan(1000);
      // slow.example.test takes 800 ms upstream, longer than the idle time: the answer still comes.
      const [slow] = await tcpAsk(ALLOWLISTED, [query('slow.example.test')], idle.port);
      expect(slow!.rcode).toBe('NOERROR');
    } finally {
      await idle.resolver.close();
    }
  });

  it('close() waits for allow() calls under way, so none lands after it', async () => {
    let finished = false;
    const slowAllow = await startResolver({
      allow: async () => {
        await sleep(300);
        finished = true;
      },
    });
    const pending = udpAsk(ALLOWLISTED, query('a.example.test'), slowAllow.port, 1000);
    await sleep(100);
    await slowAllow.resolver.close();
    expect(finished).toBe(true);
    expect(await pending).toBeUndefined(); // closed: no reply sent
  });

  it('close() is idempotent and frees the port', async () => {
    const r = await startResolver();
    await Promise.all([r.resolver.close(), r.resolver.close()]);
    const again = await SandboxResolver.start({
      listen: { address: RESOLVER, port: r.port },
      upstreams: [{ address: UPSTREAM, port: upstream.port }],
      policyFor: () => undefined,
      allow: () => {},
    });
    await again.close();
  });
});
