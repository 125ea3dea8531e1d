// The upstream DNS servers Lid's sandbox resolver forwards to by default: the nameservers of the worker's
// /etc/resolv.conf (resolv.conf(5)), IPv4 and IPv6, at most three as glibc uses (MAXNS). A local stub such as
// systemd-resolved's 127.0.0.53 is kept: the resolver runs in the worker's network namespace, where it answers.
// Pure: the caller reads the file.
import net from 'node:net';
import type { Endpoint } from './dns-transport.js';

/** glibc reads at most this many nameserver lines. */
const MAXNS = 3;

export function upstreamsFromResolvConf(text: string): Endpoint[] {
  const servers: Endpoint[] = [];
  for (const line of text.split('\n')) {
    const [keyword, address] = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined || net.isIP(address) === 0) continue;
    if (!servers.some((s) => s.address === address)) servers.push({ address, port: 53 });
  }
  return servers.slice(0, MAXNS);
}
