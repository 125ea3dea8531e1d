// HTTP for requests Lid makes on a tenant's behalf (callbacks, registry pulls and their token servers), under an
// EgressPolicy: every connection -- the first, each redirect hop, a token realm on another host -- resolves its
// host, keeps only the addresses the policy allows, and connects to exactly the one it checked. Resolving once and
// connecting to that IP leaves no window for DNS rebinding (a name that answers a public address to the check and
// 127.0.0.1 to the connect).
//
// Built on undici (the npm package, 6.x: the line that supports Node 20.6+; 7.x needs 20.18), the same client as
// Node's own fetch, because its Agent takes the function that opens each connection: resolve, check and connect
// happen in one place that every request passes, whatever URL the registry sends Lid to. node:http with a custom
// `lookup` was the other choice; it skips `lookup` for IP literals (so a second check is needed) and leaves
// redirects, streamed bodies and timeouts to hand-written code, while the registry client is written against fetch.
// Redirects are followed here, not by fetch, to bound their number, refuse https -> http, and drop Authorization
// when a hop changes origin (registries send blob downloads to storage hosts that must not see the token).
import dns from 'node:dns';
import net from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import { isLidError, LidError } from './errors.js';
import { type AddressKind, type EgressPolicy, refusalText } from './egress-policy.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to its addresses (default: the system resolver, /etc/hosts included). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** Where a connection is about to go, after the policy allowed it. */
export interface ConnectTarget {
  hostname: string;
  address: string;
  port: number;
}

/** The policy and, for tests, the hooks around it; passed down from config by whoever makes tenant requests. */
export interface EgressOptions {
  policy: EgressPolicy;
  /** Stands in for DNS (tests map names to the addresses they need, e.g. one that changes between answers). */
  resolve?: Resolver;
  /**
   * Called with each address the policy let through, just before connecting; throwing stops the connection. Tests
   * record connections with it, and use it to make sure a broken policy could never send a packet off the machine.
   */
  beforeConnect?: (target: ConnectTarget) => void;
}

/** The part of fetch that Lid's outbound code uses: a URL and the usual init. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface PolicedFetchOptions extends EgressOptions {
  /** Redirects followed per request; 0 returns a 3xx as it is. */
  maxRedirects: number;
  /** Milliseconds to establish a connection (TCP and TLS). */
  connectTimeoutMs?: number;
  /** Certificate authorities (PEM) to trust instead of Node's bundle (tests trust their own certificate). */
  ca?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/** fetch with the policy applied to every connection; one connection pool, closed by close(). */
export class PolicedFetch {
  private readonly agent: Agent;
  private readonly resolve: Resolver;
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: PolicedFetchOptions) {
    this.resolve = opts.resolve ?? systemResolver;
    const base = buildConnector({ timeout: opts.connectTimeoutMs ?? 10_000, ...(opts.ca ? { ca: opts.ca } : {}) });
    const port = (options: buildConnector.Options) =>
      Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    this.agent = new Agent({
      connect: (options, callback) => {
        // The allowed addresses in the resolver's order, each tried when the one before fails to connect (an AAAA
        // answer on a host without IPv6 routes, say), as Node's own happy-eyeballs would, but only among these.
        const attempt = (addresses: string[], i: number): void => {
          const address = addresses[i]!;
          try {
            opts.beforeConnect?.({ hostname: options.hostname, address, port: port(options) });
          } catch (e) {
            return callback(e as Error, null);
          }
          // `host` keeps the name, so TLS still sends it as SNI and checks the certificate against it, not the IP.
          base({ ...options, hostname: address }, (...result) => {
            if (result[0] && i + 1 < addresses.length) return attempt(addresses, i + 1);
            callback(...result);
          });
        };
        this.allowed(options.hostname).then(
          (addresses) => attempt(addresses, 0),
          (e: Error) => callback(e, null),
        );
      },
    });
  }

  /** The addresses of `hostname` the policy allows, at least one; else a LidError naming what was refused. */
  private async allowed(hostname: string): Promise<string[]> {
    const family = net.isIP(hostname);
    const candidates = family ? [{ address: hostname, family }] : await this.resolve(hostname);
    const allowed: string[] = [];
    let refused: { address: string; kind: AddressKind } | undefined;
    for (const { address } of candidates) {
      const verdict = this.opts.policy.verdict(address);
      if (verdict.allowed) allowed.push(address);
      else refused ??= { address, kind: verdict.kind };
    }
    if (allowed.length) return allowed;
    if (!refused) throw new LidError('setup_failed', `${hostname} has no address`, { host: hostname });
    const { address, kind } = refused;
    throw new LidError('invalid_spec', refusalText(hostname, address, kind, this.opts.policy), {
      host: hostname,
      address,
      kind,
      refused: 'egress policy',
    });
  }

  /**
   * fetch, following up to maxRedirects redirects itself. A refused address rejects with the policy's LidError
   * (before any connection to it); other network failures reject as fetch's do.
   */
  readonly fetch: FetchLike = async (input, init = {}) => {
    let url = new URL(input);
    let method = (init.method ?? 'GET').toUpperCase();
    let body = init.body;
    const headers = new Headers(init.headers);
    for (let hops = 0; ; hops++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new LidError('invalid_spec', `Lid fetches only http and https URLs, not ${url.protocol}`);
      }
      const response = await this.send(url, { ...init, method, headers, body, redirect: 'manual' });
      const location = response.headers.get('location');
      if (!REDIRECTS.has(response.status) || location === null || this.opts.maxRedirects === 0) return response;
      await response.body?.cancel();
      if (hops >= this.opts.maxRedirects) {
        throw new LidError('setup_failed', `${url.host} redirected Lid more than ${this.opts.maxRedirects} times`, {
          host: url.host,
        });
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new LidError('setup_failed', `${url.host} answered ${response.status} with a malformed Location`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new LidError('setup_failed', `${url.host} redirected Lid from https to plain http (${next.host})`);
      }
      if (next.origin !== url.origin) headers.delete('authorization');
      if (response.status === 303 || (method === 'POST' && (response.status === 301 || response.status === 302))) {
        method = 'GET';
        body = undefined;
        headers.delete('content-type');
      }
      url = next;
    }
  };

  private async send(url: URL, init: RequestInit): Promise<Response> {
    try {
      // undici's Response is the class Node's fetch returns; the npm package's typings differ only in name.
      const response = await undiciFetch(url, { ...(init as object), dispatcher: this.agent });
      return response as unknown as Response;
    } catch (e) {
      // fetch wraps every connection failure in TypeError('fetch failed'); the policy's refusal is the real answer.
      const cause = e instanceof Error ? e.cause : undefined;
      if (isLidError(cause)) throw cause;
      throw e;
    }
  }

  /** Drops every connection at once (idempotent): nothing made through it is still wanted. */
  close(): Promise<void> {
    this.closing ??= this.agent.destroy().catch(() => {});
    return this.closing;
  }
}

/**
 * Reads a body that must be small, refusing more than `limit` bytes whatever Content-Length claimed (if anything).
 * The body is never shown to anyone: only its size matters to the caller's error.
 */
export async function readCapped(res: Response, limit: number, tooBig: () => Error): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw tooBig();
      chunks.push(chunk);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks);
}
