// Runs an EgressFirewall in its own process, so that a test can put it in a network namespace it made
// (`ip netns exec NS node ...`): one JSON request a line on stdin ({ op, args }), one JSON answer a line on stdout
// ({ result } or { error }). Requests are served one at a time with a turn of the event loop between them, as the
// runtime would call the firewall.
import readline from 'node:readline';
import { EgressFirewall, type FirewallConfig } from '../runtime/net/egress-firewall.js';
import type { NetworkPolicy, PortRange } from '../common/network-policy.js';
import { NfNetlink } from '../runtime/net/nf-netlink.js';

let fw: EgressFirewall | undefined;
const need = () =>
  fw ??
  (() => {
    throw new Error('not open');
  })();

/** Cycles left out of the figures: the first ones run before the JIT has compiled the path. */
const WARM_UP = 200;

/**
 * Median microseconds of admit, a DNS answer, a read of the refusals and release of one address, `n` times, with a
 * turn of the event loop between.
 */
async function bench(n: number, policy: NetworkPolicy) {
  const [admit, answer, denied, release]: [number[], number[], number[], number[]] = [[], [], [], []];
  const us = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1000;
  for (let i = 0; i < n + WARM_UP; i++) {
    if (i === WARM_UP) admit.length = answer.length = denied.length = release.length = 0;
    let t0 = process.hrtime.bigint();
    need().admit('10.231.255.254', policy);
    admit.push(us(t0));
    t0 = process.hrtime.bigint();
    need().allowResolved('10.231.255.254', `198.18.${i >> 8}.${i & 255}`, [443, 443], 60);
    answer.push(us(t0));
    t0 = process.hrtime.bigint();
    need().denied('10.231.255.254');
    denied.push(us(t0));
    t0 = process.hrtime.bigint();
    need().release('10.231.255.254');
    release.push(us(t0));
    await new Promise((r) => setImmediate(r));
  }
  const median = (xs: number[]) => Math.round(xs.sort((a, b) => a - b)[xs.length >> 1]!);
  return {
    admitUs: median(admit),
    allowResolvedUs: median(answer),
    deniedUs: median(denied),
    releaseUs: median(release),
  };
}

const ops: Record<string, (...args: never[]) => unknown> = {
  open: (cfg: FirewallConfig) => void (fw = EgressFirewall.open(cfg)),
  admit: (sandbox: string, policy: NetworkPolicy) => need().admit(sandbox, policy),
  allowResolved: (sandbox: string, address: string, ports: PortRange, ttl: number) =>
    need().allowResolved(sandbox, address, ports, ttl),
  denied: (sandbox: string) => need().denied(sandbox),
  release: (sandbox: string) => need().release(sandbox),
  sandboxes: () => need().sandboxes(),
  close: () => need().close(),
  bench,
  /** A batch the kernel refuses, on the firewall's own kind of socket, then one it accepts on the same socket. */
  refusedThenAccepted: () => {
    const nl = new NfNetlink();
    const key = Buffer.from([10, 231, 255, 253]);
    const ref = { table: 'lid', set: 'internet' };
    let refused = '';
    try {
      nl.apply(
        [
          { ...ref, op: 'add', elements: [{ key }] },
          { ...ref, op: 'delete', elements: [{ key: Buffer.from([10, 231, 255, 252]) }] },
        ],
        'test',
      );
    } catch (e) {
      refused = (e as Error).message;
    }
    const appliedNothing = nl.get(ref, key, 'test') === null;
    nl.apply([{ ...ref, op: 'add', elements: [{ key }] }], 'test');
    const thenApplied = nl.get(ref, key, 'test') !== null;
    nl.apply([{ ...ref, op: 'delete', elements: [{ key }] }], 'test');
    nl.close();
    return { refused, appliedNothing, thenApplied };
  },
};

for await (const line of readline.createInterface({ input: process.stdin })) {
  const { op, args } = JSON.parse(line) as { op: string; args: never[] };
  try {
    const result = await ops[op]!(...args);
    process.stdout.write(`${JSON.stringify({ result: result ?? null })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: String((e as Error).message) })}\n`);
  }
  await new Promise((r) => setImmediate(r));
}
