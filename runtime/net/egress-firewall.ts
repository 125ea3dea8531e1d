// The host side of a sandbox's network policy, in table `inet lid` of the network namespace the caller is in (the
// table and its sets: egress-ruleset.ts). The table is created once with `nft -f` and never flushed by one runtime
// while another may use it; a sandbox's admission, DNS answers and release are set elements only, each change one
// nf_tables netlink transaction (nf-netlink.ts): tens of microseconds, where spawning `nft` costs milliseconds.
//
// Ownership: the instance that admits an address is the one that adds its DNS answers and releases it (the resolver
// shares the runtime's instance), so it knows every element it must delete. Deleting range elements costs the
// kernel ~60 µs each (nft_set_pipapo rebuilds its lookup tables), so release() closes the `admitted` gate and
// deletes the hash elements at once, and the range elements in the next turn of the event loop (or before the
// address is admitted again, or at close): a gated-out element matches nothing.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { LidError } from '../../common/errors.js';
import type { CidrRule, NetworkPolicy, PortRange } from '../../common/network-policy.js';
import {
  TABLE,
  addressKey,
  allowBoxes,
  boxElement,
  configTag,
  denyText,
  elementSandbox,
  generationElements,
  ipToInt,
  mergeRanges,
  rulesetText,
  type FirewallConfig,
  type Range,
} from './egress-ruleset.js';
import { NfNetlink, type ElementChange, type SetElement } from './nf-netlink.js';

export { rulesetText, type FirewallConfig } from './egress-ruleset.js';

const change = (op: 'add' | 'delete', set: string, elements: SetElement[]): ElementChange[] =>
  elements.length ? [{ table: TABLE, set, op, elements }] : [];

/**
 * Deleting an element that is not there fails the whole transaction (ENOENT); adding one that is there is a no-op.
 * So an add then a delete of the same element in one transaction removes it whether it was there, was never there,
 * or has just expired.
 */
function removal(set: string, elements: SetElement[]): ElementChange[] {
  const plain = elements.map(({ key, keyEnd, data }) => ({
    key,
    ...(keyEnd ? { keyEnd } : {}),
    ...(data ? { data } : {}),
  }));
  return [...change('add', set, plain), ...change('delete', set, plain)];
}

function nft(script: string): { ok: true } | { ok: false; error: string } {
  try {
    execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'pipe', 'pipe'] });
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String((e as { stderr?: Buffer }).stderr ?? e).trim() };
  }
}

/** Whether this network namespace has table inet lid: sandbox networking has been used here since boot. */
export function firewallTableExists(): boolean {
  return tableTag() !== null;
}

/** The table's comment, '' without one, null without the table. */
function tableTag(): string | null {
  try {
    const text = execFileSync('nft', ['list', 'table', 'inet', TABLE], { stdio: ['ignore', 'pipe', 'pipe'] });
    return /^\s*comment "([^"]*)"/m.exec(text.toString())?.[1] ?? '';
  } catch {
    return null;
  }
}

interface Answer {
  ports: Range[];
  expires: number;
}

interface Admission {
  generation: number;
  allow: SetElement[];
  /** DNS answers by destination address. */
  answers: Map<string, Answer>;
}

const RANGE_SETS = ['allow', 'resolved'] as const;
const GENERATION_SETS = ['generation', 'current'] as const;
/** DNS allows TTLs of years; an answer is trusted for a day at most (the resolver is told so: see allowResolved). */
const MAX_TTL_SECONDS = 86_400;
/**
 * An element outlives its answer by a second: the sandbox may cache the answer for its whole TTL, and answers of one
 * name repeated within that second (an upstream cache counts down in whole seconds) then change nothing.
 */
const TTL_SLACK_MS = 1000;

export class EgressFirewall {
  private readonly admissions = new Map<string, Admission>();
  /** Range elements of released sandboxes, deleted in the next turn of the event loop. */
  private readonly pending = new Map<string, ElementChange[]>();
  private drainScheduled = false;
  private closed = false;
  /**
   * Addresses known to hold no element: released by this instance, which keeps them (a runtime keeps its uid slots
   * until it closes: runtime/uid-slots.ts). Any other address is looked for in the sets before its admission, in
   * case a crashed runtime left elements for it.
   */
  private readonly clean = new Set<string>();

  private constructor(private readonly nl: NfNetlink) {}

  /**
   * Creates the table if missing. A table of the same configuration (another runtime's) is kept and its deny set
   * replaced atomically; one of another configuration is replaced only while no sandbox has an element in it,
   * otherwise this throws rather than break the sandboxes of the runtime that made it.
   */
  static open(cfg: FirewallConfig): EgressFirewall {
    const script = rulesetText(cfg);
    for (let attempt = 0; ; attempt++) {
      const created = nft(script);
      if (created.ok) break;
      const tag = tableTag();
      if (tag === null && attempt < 2) continue; // deleted meanwhile: create it again
      if (tag === null)
        throw new LidError('setup_failed', `nft: creating table inet ${TABLE} failed: ${created.error}`);
      if (tag === configTag(cfg)) {
        const updated = nft(denyText(cfg));
        if (!updated.ok) throw new LidError('setup_failed', `nft: updating the deny set failed: ${updated.error}`);
        break;
      }
      const inUse = EgressFirewall.using(new NfNetlink(), (fw) => fw.sandboxes());
      if (inUse.length || attempt >= 2)
        throw new LidError(
          'setup_failed',
          `table inet ${TABLE} exists with another configuration (${tag}) and ${inUse.length} sandboxes in it`,
          { error: created.error },
        );
      nft(`delete table inet ${TABLE}\n`);
    }
    return new EgressFirewall(new NfNetlink());
  }

  private static using<T>(nl: NfNetlink, f: (fw: EgressFirewall) => T): T {
    const fw = new EgressFirewall(nl);
    try {
      return f(fw);
    } finally {
      fw.close();
    }
  }

  /** 'internet': the whole internet but `deny`; 'allow': its CIDR rules now, its domain rules as the resolver answers. */
  admit(sandbox: string, policy: NetworkPolicy): void {
    if (!net.isIPv4(sandbox)) throw new RangeError(`sandbox address ${JSON.stringify(sandbox)} is not IPv4`);
    const stale = this.clean.has(sandbox) ? [] : this.leftovers(sandbox);
    const key = addressKey(sandbox);
    const rules = policy.kind === 'allow' ? policy.rules.filter((r): r is CidrRule => r.kind === 'cidr') : [];
    const allow = allowBoxes(rules).map((b) => boxElement(sandbox, b));
    const generation = crypto.randomInt(1, 2 ** 32);
    const { map, current } = generationElements(sandbox, generation);
    const changes = [
      ...stale,
      ...(this.pending.get(sandbox) ?? []),
      ...removal('denied', [{ key }]),
      ...change('add', 'allow', allow),
      ...change('add', 'internet', policy.kind === 'internet' ? [{ key }] : []),
      ...change('add', 'generation', [map]),
      ...change('add', 'current', [current]),
      ...change('add', 'admitted', [{ key }]),
    ];
    this.nl.apply(changes, `admitting ${sandbox}`);
    this.pending.delete(sandbox);
    this.clean.delete(sandbox);
    this.admissions.set(sandbox, { generation, allow, answers: new Map() });
  }

  /**
   * Lets `sandbox` reach `address` on `ports` for ttlSeconds (1 s to a day), for an answer of its resolver, before
   * the resolver replies. Answers for one address are merged into disjoint port ranges that live as long as the
   * longest (elements must not overlap); an answer already covered for its whole TTL changes nothing. Returns the
   * whole seconds the element lives (at least the TTL). Ignored (0) for a sandbox this instance has not admitted: an
   * answer that raced its release.
   */
  allowResolved(sandbox: string, address: string, ports: PortRange, ttlSeconds: number): number {
    const answers = this.admissions.get(sandbox)?.answers;
    if (!answers) return 0;
    if (!net.isIPv4(address)) throw new RangeError(`resolved address ${JSON.stringify(address)} is not IPv4`);
    if (!(
      Number.isInteger(ports[0]) &&
      Number.isInteger(ports[1]) &&
      1 <= ports[0] &&
      ports[0] <= ports[1] &&
      ports[1] <= 65535
    ))
      throw new RangeError(`ports ${JSON.stringify(ports)} must be a range within 1-65535`);
    const now = Date.now();
    const ttlMs = Math.min(MAX_TTL_SECONDS, Math.max(1, Math.ceil(ttlSeconds) || 1)) * 1000;
    const old = answers.get(address);
    const live = old && old.expires > now ? old : undefined;
    const merged = mergeRanges([...(live?.ports ?? []), [ports[0], ports[1]]]);
    const covered = live && JSON.stringify(merged) === JSON.stringify(live.ports);
    if (covered && live.expires >= now + ttlMs) return Math.floor((live.expires - now) / 1000);
    const until = Math.max(now + ttlMs + TTL_SLACK_MS, live?.expires ?? 0);
    const a = ipToInt(address);
    const elements = (rs: Range[], timeoutMs?: number) =>
      rs.map((p) => boxElement(sandbox, { addresses: [a, a], ports: p }, timeoutMs));
    const changes = [
      ...removal('resolved', elements(old?.ports ?? [])),
      ...change('add', 'resolved', elements(merged, until - now)),
    ];
    this.nl.apply(changes, `allowing ${sandbox} to reach ${address}`);
    answers.set(address, { ports: merged, expires: until });
    return Math.floor((until - now) / 1000);
  }

  /** Packets from `sandbox` refused since its admission. */
  denied(sandbox: string): number {
    const ref = { table: TABLE, set: 'denied' };
    return this.nl.get(ref, addressKey(sandbox), `reading refusals of ${sandbox}`)?.packets ?? 0;
  }

  /** Removes every element about `sandbox`: its gate and hash elements now, its range elements right after. */
  release(sandbox: string): void {
    const key = addressKey(sandbox);
    const known = this.admissions.get(sandbox);
    const ranges = known
      ? [
          ...removal('allow', known.allow),
          ...removal(
            'resolved',
            [...known.answers].flatMap(([ip, r]) =>
              r.ports.map((p) => boxElement(sandbox, { addresses: [ipToInt(ip), ipToInt(ip)], ports: p })),
            ),
          ),
        ]
      : this.clean.has(sandbox)
        ? []
        : this.leftovers(sandbox, RANGE_SETS);
    // Removals, not deletes, even of what this instance added: a sweeper elsewhere may have got there first.
    const hashes = ['admitted', 'internet', 'denied'].flatMap((set) => removal(set, [{ key }]));
    const gen = known ? generationElements(sandbox, known.generation) : undefined;
    const generation = gen
      ? [...removal('generation', [gen.map]), ...removal('current', [gen.current])]
      : this.clean.has(sandbox)
        ? []
        : this.leftovers(sandbox, GENERATION_SETS);
    this.nl.apply([...hashes, ...generation], `releasing ${sandbox}`);
    this.admissions.delete(sandbox);
    if (ranges.length) this.pending.set(sandbox, [...(this.pending.get(sandbox) ?? []), ...ranges]);
    this.clean.add(sandbox);
    this.scheduleDrain();
  }

  /** Addresses that have any element, for the sweeper. */
  sandboxes(): string[] {
    this.drain();
    const found = new Set<string>();
    for (const set of ['admitted', 'internet', 'denied', ...GENERATION_SETS, ...RANGE_SETS])
      for (const e of this.nl.dump({ table: TABLE, set }, `listing ${set}`)) found.add(elementSandbox(e.key));
    return [...found];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.drain();
    } finally {
      this.nl.close();
    }
  }

  /**
   * Removals of whatever `sets` hold for `sandbox`, found by listing them. A map's elements are deleted as listed
   * (adding one again would need its value); the rest are removed (added then deleted), so that one which expired
   * or went meanwhile cannot fail the batch.
   */
  private leftovers(
    sandbox: string,
    sets: readonly string[] = [...RANGE_SETS, ...GENERATION_SETS, 'admitted', 'internet'],
  ): ElementChange[] {
    const key = addressKey(sandbox);
    return sets.flatMap((set) => {
      if (set === 'admitted' || set === 'internet') return removal(set, [{ key }]);
      const found = this.nl
        .dump({ table: TABLE, set }, `listing ${set}`)
        .filter((e) => e.key.subarray(0, 4).equals(key));
      return set === 'generation' ? change('delete', set, found) : removal(set, found);
    });
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || !this.pending.size) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /** Deletes the pending range elements; on failure their addresses are no longer known clean (swept at admit). */
  private drain(): void {
    if (!this.pending.size) return;
    const batch = [...this.pending];
    this.pending.clear();
    try {
      this.nl.apply(
        batch.flatMap(([, changes]) => changes),
        'deleting released elements',
      );
    } catch {
      for (const [sandbox] of batch) this.clean.delete(sandbox);
    }
  }
}
