// The test world's servers (test/net-world.ts), run inside the world namespace: HTTP servers that answer with where
// the request came from (so a test sees NAT at work), and a DNS server for the test zone. Reads its spec as JSON on
// stdin; prints "ready" once everything listens.
import dgram from 'node:dgram';
import http from 'node:http';
import dnsPacket from 'dns-packet';
import type { WorldSpec } from './net-world.js';

let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  void main(JSON.parse(input) as WorldSpec & { dns: string });
});

async function main(spec: WorldSpec & { dns: string }): Promise<void> {
  const listening: Promise<void>[] = [];
  for (const { address, ports } of spec.http) {
    for (const port of ports) {
      const server = http.createServer((req, res) => {
        res.end(`hello from ${address}:${port} to ${req.socket.remoteAddress}\n`);
      });
      listening.push(new Promise((resolve) => server.listen(port, address, resolve)));
    }
  }
  const dns = dgram.createSocket('udp4');
  dns.on('message', (msg, from) => {
    const query = dnsPacket.decode(msg);
    const question = query.questions?.[0];
    const answers: dnsPacket.Answer[] = [];
    let name = question?.name.toLowerCase() ?? '';
    for (let hops = 0; hops < 8; hops++) {
      const entry = spec.zone[name];
      if (!entry) break;
      if (Array.isArray(entry)) {
        if (question?.type === 'A')
          for (const a of entry) answers.push({ type: 'A', name, ttl: 30, class: 'IN', data: a });
        break;
      }
      answers.push({ type: 'CNAME', name, ttl: 30, class: 'IN', data: entry.cname });
      name = entry.cname;
    }
    const known = spec.zone[question?.name.toLowerCase() ?? ''] !== undefined;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), // rcode 3: NXDOMAIN
      questions: query.questions,
      answers,
    });
    dns.send(reply, from.port, from.address);
  });
  listening.push(new Promise((resolve) => dns.bind(53, spec.dns, resolve)));
  await Promise.all(listening);
  process.stdout.write('ready\n');
}
