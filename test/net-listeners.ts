// Servers for network tests, one per [udp:]ADDRESS:PORT argument (an IPv6 address in brackets; a UDP server binds a
// single address, so that its answers come from the address asked). Each answers with the address the connection or
// datagram came from (a TCP server then closes): a test sees both that it got through and who the server saw
// (masquerade). Prints "ready" once every one listens.
import dgram from 'node:dgram';
import net from 'node:net';

const listening = process.argv.slice(2).map((spec) => {
  const m = /^(udp:)?\[?([^\]]+)\]?:(\d+)$/.exec(spec)!;
  const [host, port] = [m[2]!, Number(m[3])];
  if (m[1]) {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    socket.on('message', (_, from) => socket.send(`${from.address}\n`, from.port, from.address));
    return new Promise<void>((resolve) => socket.bind(port, host, resolve));
  }
  const server = net.createServer((socket) => socket.end(`${socket.remoteAddress}\n`));
  return new Promise<void>((resolve) => server.listen({ host, port }, resolve));
});
await Promise.all(listening);
process.stdout.write('ready\n');
