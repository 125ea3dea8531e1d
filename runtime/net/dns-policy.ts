// What Lid's sandbox resolver does with a question under a sandbox's network policy, and which addresses an upstream
// answer grants the sandbox. Pure: no sockets. The domain check applies to the name the sandbox asked for; an answer
// grants only the A records whose owner is that name or is reached from it by the answer's CNAME chain, so an
// upstream answer that carries an address for some other name (the shape of a cache-poisoning attempt) adds nothing.
import { domainMatches, type NetworkPolicy, type PortRange } from '../../common/network-policy.js';
import { aAddress, CLASS_IN, cnameTarget, type DnsMessage, TYPE } from './dns-wire.js';

/** A granted address is allowed for its TTL, but for at least 1 s (a TTL of 0 still has to let the connect through). */
export const MIN_GRANT_TTL_SECONDS = 1;
/** ...and at most an hour, so a set entry never outlives a policy by long; answers' TTLs are capped to match. */
export const MAX_GRANT_TTL_SECONDS = 3600;
/** CNAME links followed at most, as resolvers bound them (BIND follows 16); a longer chain grants what it reached. */
const MAX_CNAME_LINKS = 16;

export type QueryDecision =
  | { kind: 'refuse' }
  | { kind: 'nxdomain' }
  /** NOERROR with no answer: AAAA, since sandboxes have no IPv6. */
  | { kind: 'empty' }
  /** Ask upstream. `ports`: the port ranges of the matching domain rules, or undefined for an internet sandbox. */
  | { kind: 'forward'; ports: PortRange[] | undefined };

/** The decision for a question `name` (canonical, as dns-wire reads it) of `type` from a sandbox with `policy`. */
export function decideQuery(policy: NetworkPolicy | undefined, name: string, type: number): QueryDecision {
  if (policy === undefined || policy.kind === 'none') return { kind: 'refuse' };
  let ports: PortRange[] | undefined;
  if (policy.kind === 'allow') {
    ports = [];
    for (const rule of policy.rules) {
      if (rule.kind !== 'domain' || !domainMatches(rule, name)) continue;
      if (!ports.some(([lo, hi]) => lo === rule.ports[0] && hi === rule.ports[1])) ports.push(rule.ports);
    }
    if (ports.length === 0) return { kind: 'nxdomain' };
  }
  if (type === TYPE.AAAA) return { kind: 'empty' };
  return { kind: 'forward', ports };
}

export function clampTtl(ttl: number): number {
  return Math.min(Math.max(ttl, MIN_GRANT_TTL_SECONDS), MAX_GRANT_TTL_SECONDS);
}

/**
 * The A records of the answer section that answer `qname`: owned by it, or by a name its CNAME chain reaches. Each
 * with its TTL clamped. A record of class other than IN, or whose data is not 4 bytes, counts for nothing.
 */
export function grantedAddresses(buf: Buffer, msg: DnsMessage, qname: string): { address: string; ttl: number }[] {
  const answers = msg.records.filter((r) => r.section === 'answer' && r.klass === CLASS_IN);
  const chain = new Set([qname]);
  // Records may come in any order: extend the chain until a pass adds nothing.
  for (let links = 0; links < MAX_CNAME_LINKS; links++) {
    const next = answers.find((r) => r.type === TYPE.CNAME && chain.has(r.name) && !chain.has(cnameTarget(buf, r)));
    if (!next) break;
    chain.add(cnameTarget(buf, next));
  }
  const granted: { address: string; ttl: number }[] = [];
  for (const r of answers) {
    const address = r.type === TYPE.A && chain.has(r.name) ? aAddress(buf, r) : undefined;
    if (address !== undefined && !granted.some((g) => g.address === address))
      granted.push({ address, ttl: clampTtl(r.ttl) });
  }
  return granted;
}
