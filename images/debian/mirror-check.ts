// Can this machine reach the Debian mirrors the recipes download from? Asked once before `lid up` builds its default
// images: where the answer is no (a network namespace whose route leads nowhere, a firewall that drops DNS), apt
// would wait out a DNS timeout for every package, for minutes, before failing. A name lookup and a TCP connect to
// the first mirror of apt's own sources, each with a short deadline, say so in seconds instead.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const SOURCES = '/etc/apt/sources.list';
const SOURCES_DIR = '/etc/apt/sources.list.d';

/** The first http(s) mirror URL in apt's sources (one-line .list or deb822 .sources files), or null. */
export function firstMirror(files = sourceFiles()): URL | null {
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const uri = /^\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(https?:\/\/\S+)/i.exec(line)?.[1];
      if (uri && URL.canParse(uri)) return new URL(uri);
    }
  }
  return null;
}

function sourceFiles(): string[] {
  let extra: string[] = [];
  try {
    extra = fs
      .readdirSync(SOURCES_DIR)
      .filter((f) => f.endsWith('.list') || f.endsWith('.sources'))
      .sort()
      .map((f) => path.join(SOURCES_DIR, f));
  } catch {
    // no directory
  }
  return [SOURCES, ...extra];
}

const within = <T>(ms: number, what: Promise<T>): Promise<T> =>
  Promise.race([
    what,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms).unref()),
  ]);

/**
 * Why the mirrors cannot be reached, or null when they can (or when it cannot be told: no http source, or a proxy
 * that apt goes through and this check does not).
 */
export async function mirrorProblem(timeoutMs = 5000, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  if (env.http_proxy || env.HTTP_PROXY || env.https_proxy || env.HTTPS_PROXY) return null;
  const mirror = firstMirror();
  if (!mirror) return null;
  const port = Number(mirror.port || (mirror.protocol === 'https:' ? 443 : 80));
  let address: string;
  try {
    ({ address } = await within(timeoutMs, dns.lookup(mirror.hostname)));
  } catch (e) {
    return `cannot resolve ${mirror.hostname} (${(e as Error).message})`;
  }
  try {
    await within(
      timeoutMs,
      new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: address, port }, () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', reject);
        setTimeout(() => socket.destroy(), timeoutMs).unref();
      }),
    );
  } catch (e) {
    return `cannot connect to ${mirror.hostname} (${address}:${port}: ${(e as Error).message})`;
  }
  return null;
}
