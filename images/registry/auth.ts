// Registry authentication, the challenge/response of the distribution spec and Docker's token auth: a request
// goes out with whatever the session already holds; a 401 names the scheme in WWW-Authenticate. "Basic" means
// sending the user's credentials on every request; "Bearer realm=..,service=..,scope=.." means asking the token
// server at realm for a short-lived token (presenting the credentials there, if any) and sending that instead.
// Tokens are cached per scope for their lifetime, so a pull of many blobs asks the token server once. Every request
// to the registry and its token server goes through here, so this is also where network failures get their message.
// The token server is whatever host the registry names, so its answer is read within a small bound and never
// quoted in an error: only its status and origin are.
import { STATUS_CODES } from 'node:http';
import { LidError, isLidError } from '../../common/errors.js';
import { type FetchLike, readCapped } from '../../common/policed-fetch.js';
import type { Credentials } from './credentials.js';

export interface Challenge {
  /** Lowercased: "basic", "bearer". */
  scheme: string;
  /** Parameter names lowercased, values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHARS = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20; // tokens are JWTs of a few kB; Google's run to ~2 kB

/**
 * Parses a WWW-Authenticate value (RFC 9110 section 11.6.1): one or more challenges, each a scheme and
 * comma-separated name=value parameters whose values may be quoted strings holding commas, equals signs and
 * backslash escapes. Several headers arrive joined by ", ", which the same grammar covers.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const skip = (chars: string) => {
    while (i < header.length && chars.includes(header[i]!)) i++;
  };
  const readToken = (): string | undefined => {
    TOKEN_CHARS.lastIndex = i;
    const match = TOKEN_CHARS.exec(header);
    if (!match) return undefined;
    i = TOKEN_CHARS.lastIndex;
    return match[0];
  };
  const readQuoted = (): string => {
    let value = '';
    i++; // the opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++;
      value += header[i];
      i++;
    }
    i++; // the closing quote (or past the end of an unterminated value, which is taken as is)
    return value;
  };

  while (i < header.length) {
    skip(' \t,');
    const scheme = readToken();
    if (!scheme) break; // not a challenge we can read: keep what came before
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    while (true) {
      skip(' \t');
      const start = i;
      const name = readToken();
      skip(' \t');
      if (!name || header[i] !== '=') {
        i = start; // a token without "=" is the next challenge's scheme
        break;
      }
      i++;
      skip(' \t');
      challenge.params[name.toLowerCase()] = header[i] === '"' ? readQuoted() : (readToken() ?? '');
      skip(' \t');
      if (header[i] !== ',') break;
      i++;
    }
  }
  return challenges;
}

export interface RegistrySessionOptions {
  /** The registry's host[:port], for messages. */
  registry: string;
  /** "https://host[:port]" (or http:// with plainHttp). */
  base: string;
  plainHttp: boolean;
  creds?: Credentials;
  /** What a user without credentials can do about it, for the "needs credentials" error. */
  credentialsHint: string;
  fetch: FetchLike;
  signal?: AbortSignal;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Authenticated GETs against one registry, remembering what the registry asked for. */
export class RegistrySession {
  private useBasic = false; // the registry asked for Basic once: send it up front from then on
  private readonly tokens = new Map<string, CachedToken>(); // by the scope the caller asked for
  private readonly pendingTokens = new Map<string, Promise<void>>(); // parallel downloads share one token request

  private readonly fetch: FetchLike;

  constructor(private readonly opts: RegistrySessionOptions) {
    this.fetch = guardedFetch(opts.fetch, opts.base, opts.plainHttp);
  }

  /**
   * GETs url with the access `scope` needs ("repository:team/app:pull"), answering one authentication challenge.
   * Any response but 401 is returned as is; a 401 that survives the challenge becomes a LidError.
   */
  async get(url: string, scope: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    const first = await this.send(url, scope, headers, signal);
    if (first.response.status !== 401) return first.response;
    const challenges = parseChallenges(first.response.headers.get('www-authenticate') ?? '');
    await first.response.body?.cancel();

    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      let pending = this.pendingTokens.get(scope);
      if (!pending) {
        pending = this.fetchToken(bearer, scope, signal).finally(() => this.pendingTokens.delete(scope));
        this.pendingTokens.set(scope, pending);
      }
      await pending;
    } else if (basic) {
      if (!this.opts.creds) throw this.needsCredentials(scope);
      if (first.sent === 'basic') throw this.refused(scope);
      this.useBasic = true;
    } else {
      // Scheme names are tokens by the grammar, but the registry picks them: show a few, briefly.
      const schemes =
        challenges
          .slice(0, 4)
          .map((c) => c.scheme.slice(0, 20))
          .join(', ') || 'none';
      throw new LidError(
        'unsupported',
        `registry ${this.opts.registry} asks for an authentication scheme Lid does not support (${schemes}); Lid speaks Basic and Bearer`,
      );
    }
    const second = await this.send(url, scope, headers, signal);
    if (second.response.status !== 401) return second.response;
    await second.response.body?.cancel();
    throw this.opts.creds ? this.refused(scope) : this.needsCredentials(scope);
  }

  private async send(
    url: string,
    scope: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<{ response: Response; sent?: 'basic' | 'bearer' }> {
    const token = this.tokens.get(scope);
    let sent: 'basic' | 'bearer' | undefined;
    const all = { ...headers };
    if (token && token.expiresAt > Date.now()) {
      all.authorization = `Bearer ${token.token}`;
      sent = 'bearer';
    } else if (this.useBasic && this.opts.creds) {
      all.authorization = basicHeader(this.opts.creds);
      sent = 'basic';
    }
    const response = await this.fetch(url, { headers: all, signal: signal ?? this.opts.signal });
    return { response, sent };
  }

  /** Asks the token server named by the challenge for a token, and caches it under the caller's scope. */
  private async fetchToken(challenge: Challenge, scope: string, signal: AbortSignal | undefined): Promise<void> {
    const { realm, service } = challenge.params;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new LidError(
        'setup_failed',
        `registry ${this.opts.registry} asked for a token but named no usable token server (its realm is not a URL)`,
      );
    }
    if (service) url.searchParams.set('service', service);
    // The challenge's scope is what the registry will check; ours is added in case the two differ.
    const scopes = new Set([...(challenge.params.scope ?? '').split(' ').filter(Boolean), scope]);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (this.opts.creds && url.protocol !== 'https:' && !this.opts.plainHttp) {
      throw new LidError(
        'setup_failed',
        `registry ${this.opts.registry} sends Lid to the token server ${url.origin} over plain HTTP; Lid will not send credentials there unencrypted (pass --plain-http to allow it)`,
      );
    }
    if (this.opts.creds) {
      headers.authorization = basicHeader(this.opts.creds);
      url.searchParams.set('account', this.opts.creds.username);
    }
    const requestedAt = Date.now();
    const res = await this.fetch(url, { headers, signal: signal ?? this.opts.signal });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.opts.creds ? this.refused(scope) : this.needsCredentials(scope);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new LidError(
        'setup_failed',
        `the token server ${url.origin} of registry ${this.opts.registry} answered ${statusLine(res.status)}`,
      );
    }
    const bytes = await readCapped(res, MAX_TOKEN_RESPONSE_BYTES, () => {
      return new LidError(
        'setup_failed',
        `the token server ${url.origin} of registry ${this.opts.registry} sent more than ${MAX_TOKEN_RESPONSE_BYTES} bytes`,
      );
    });
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      body = undefined;
    }
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    const token = [fields.token, fields.access_token].find((t): t is string => typeof t === 'string' && t !== '');
    if (!token) {
      throw new LidError(
        'setup_failed',
        `the token server ${url.origin} of registry ${this.opts.registry} sent no token`,
      );
    }
    // The spec's default lifetime is 60 s, counted from issued_at when the server gives it.
    const lifetimeMs = (typeof fields.expires_in === 'number' && fields.expires_in > 0 ? fields.expires_in : 60) * 1000;
    const issuedAt = typeof fields.issued_at === 'string' ? Date.parse(fields.issued_at) : NaN;
    const start = Number.isNaN(issuedAt) ? requestedAt : Math.min(issuedAt, requestedAt);
    // Stop using a token a little before it runs out, so that no request is sent with one about to expire.
    const margin = Math.min(10_000, lifetimeMs / 2);
    this.tokens.set(scope, { token, expiresAt: start + lifetimeMs - margin });
  }

  private needsCredentials(scope: string): LidError {
    return new LidError(
      'invalid_spec',
      `registry ${this.opts.registry} needs credentials to pull ${scopeName(scope)}: ${this.opts.credentialsHint}`,
      { registry: this.opts.registry },
    );
  }

  private refused(scope: string): LidError {
    const creds = this.opts.creds!;
    const from = creds.source ? ` (from ${creds.source})` : '';
    return new LidError(
      'invalid_spec',
      `registry ${this.opts.registry} refused the credentials of user "${creds.username}"${from} for ${scopeName(scope)}: check the user name, the password and that the user may pull it`,
      { registry: this.opts.registry, username: creds.username },
    );
  }
}

/** "404 Not Found": the status and its standard phrase, never the server's own words. */
export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`.trim();
}

function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}

/** "repository:team/app:pull" -> "team/app", for messages. */
function scopeName(scope: string): string {
  const parts = scope.split(':');
  return parts.length >= 3 ? parts.slice(1, -1).join(':') : scope;
}

/** fetch, with network failures turned into LidErrors that name the registry URL and the cause. */
function guardedFetch(inner: FetchLike, base: string, plainHttp: boolean): FetchLike {
  return async (input, init) => {
    try {
      return await inner(input, init);
    } catch (e) {
      if (isLidError(e) || init?.signal?.aborted) throw e; // a cancelled pull is not a network problem
      throw networkError(base, String(input), e, plainHttp);
    }
  };
}

function networkError(base: string, url: string, e: unknown, plainHttp: boolean): LidError {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : '';
  // OpenSSL's messages run to a file name and line; the reason field is the part a person can use.
  const raw = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]!.trim();
  const reason = /:SSL routines:[^:]*:([^:]+):/.exec(raw)?.[1] ?? raw;
  const origin = new URL(url).origin;
  const target = origin === base ? `registry ${base}` : `${origin}, the token server of registry ${base}`;
  let text = `cannot reach ${target}: ${code && !reason.includes(code) ? `${code} ` : ''}${reason}`;
  const host = new URL(base).hostname;
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '[::1]';
  const tlsTrouble = /^(EPROTO|ECONNRESET|ERR_SSL_|ERR_TLS_|UND_ERR_SOCKET)/.test(code) || /ssl|tls/i.test(raw);
  if (!plainHttp && loopback && origin === base && tlsTrouble) {
    text += ' (a registry on loopback usually speaks plain HTTP: pass --plain-http)';
  }
  return new LidError('setup_failed', text, { url, code: code || undefined });
}
