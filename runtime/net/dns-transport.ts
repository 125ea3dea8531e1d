// How Lid's sandbox resolver talks DNS over UDP and TCP: one exchange with one upstream server, and the 2-byte length
// framing of DNS over TCP (RFC 1035 section 4.2.2, RFC 7766). Each upstream exchange uses a socket of its own
// (connected, so the kernel drops datagrams from any other address and port, and reports an ICMP "port unreachable"
// at once instead of leaving us to wait out the timeout), a random query id, and accepts only a reply that the
// caller's check passes (same id, same question): a forged datagram is ignored and the wait goes on.
import dgram from 'node:dgram';
import net from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
}

/** A DNS message over TCP is at most 65535 bytes, after its 2-byte length. */
export function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length);
  return Buffer.concat([length, message]);
}

/** Splits a TCP byte stream into DNS messages. Holds at most one partial message (< 64 KiB). */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      messages.push(this.pending.subarray(2, 2 + length));
      this.pending = this.pending.subarray(2 + length);
    }
    return messages;
  }
}

type Accept = (reply: Buffer) => boolean;

/** One query to one server over UDP; resolves with the first accepted reply, rejects on timeout, error or abort. */
export function exchangeUdp(
  server: Endpoint,
  query: Buffer,
  accept: Accept,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.address) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (error: Error | undefined, reply?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.close();
      if (error) reject(error);
      else resolve(reply!);
    };
    const onAbort = () => finish(new Error('resolver closing'));
    const timer = setTimeout(() => finish(new Error(`no answer from ${server.address} in ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) return onAbort();
    socket.on('error', (e) => finish(e));
    socket.on('message', (reply) => {
      if (accept(reply)) finish(undefined, reply);
    });
    socket.connect(server.port, server.address, () => socket.send(query));
  });
}

/** One query to one server over TCP (a fresh connection, closed after the reply). */
export function exchangeTcp(
  server: Endpoint,
  query: Buffer,
  accept: Accept,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.address, port: server.port });
    const reader = new FrameReader();
    let done = false;
    const finish = (error: Error | undefined, reply?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply!);
    };
    const onAbort = () => finish(new Error('resolver closing'));
    const timer = setTimeout(() => finish(new Error(`no answer from ${server.address} in ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) return onAbort();
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`${server.address} closed the connection without an answer`)));
    socket.on('data', (chunk) => {
      for (const reply of reader.push(chunk)) if (accept(reply)) return finish(undefined, reply);
    });
    socket.write(frame(query));
  });
}
