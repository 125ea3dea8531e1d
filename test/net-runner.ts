// A Lid runtime with sandbox networking, run by tests and the benchmark inside a test namespace (test/net-world.ts)
// so that its bridge, nftables table and resolver live there and nowhere else. Options come as JSON in argv[2];
// runs come as JSON lines on stdin ({id, spec}) and results leave as JSON lines on stdout ({id, result} or
// {id, error}), output decoded as text. It also listens where a Lid host's own services would (options.listen), so
// tests can check that sandboxes cannot reach them.
import { spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { EgressPolicy } from '../common/egress-policy.js';
import type { RunSpecInput } from '../common/run-spec.js';
import { parseNetPool } from '../common/net-settings.js';
import { SandboxRuntime } from '../runtime/runtime.js';

interface RunnerOptions {
  pool?: string;
  upstreams: { address: string; port: number }[];
  allowPrivateEgress?: string;
  listen?: { address: string; port: number }[];
  threads?: number;
  /** Addresses of Lid's own services (Redis, the gateway) that no sandbox may reach. */
  protect?: string[];
  /** LID_NET_UPLINK: the interface sandboxes' traffic leaves by (default: the default route's). */
  uplink?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as RunnerOptions;
for (const { address, port } of options.listen ?? []) {
  net.createServer((s) => s.end('host service\n')).listen(port, address);
}
const runtime = await SandboxRuntime.start({
  threads: options.threads ?? 2,
  network: {
    pool: parseNetPool(options.pool ?? '10.231.0.0/16'),
    upstreams: options.upstreams,
    egress: EgressPolicy.parse(options.allowPrivateEgress),
    protect: options.protect,
    uplink: options.uplink,
  },
});
interface BenchRequest {
  rootfs: string;
  runs: number;
  /** bubblewrap's path: its --share-net run is the lower bound (a sandbox that makes no network of its own). */
  bwrap?: string;
}

/** `/bin/true` with network none, with internet, and bwrap sharing the host's network, round-robin per iteration. */
async function benchInterleaved(req: BenchRequest): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = { none: [], internet: [], bwrap_share_net: [] };
  const time = async (name: string, once: () => Promise<unknown>) => {
    const t0 = performance.now();
    await once();
    samples[name]!.push(performance.now() - t0);
  };
  const spec = (network: 'none' | 'internet') => ({ rootfs: req.rootfs, argv: ['/bin/true'], network });
  const bwrapArgv = ['--unshare-all', '--share-net', '--die-with-parent', '--ro-bind', req.rootfs, '/', '/bin/true'];
  for (let i = 0; i < req.runs; i++) {
    await time('none', () => runtime.run(spec('none')));
    await time('internet', () => runtime.run(spec('internet')));
    if (req.bwrap)
      await time('bwrap_share_net', () => new Promise((resolve) => spawn(req.bwrap!, bwrapArgv).on('exit', resolve)));
  }
  return samples;
}

const out = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
out({ ready: true });

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { id, spec, bench, cancelAfterMs } = JSON.parse(line) as {
    id: number;
    spec: RunSpecInput;
    bench?: BenchRequest;
    /** Cancels the run this long after it was handed to the runtime, as a job cancelled by its user. */
    cancelAfterMs?: number;
  };
  if (bench) {
    benchInterleaved(bench).then(
      (result) => out({ id, result }),
      (e: Error) => out({ id, error: { message: e.message } }),
    );
    return;
  }
  const signal = cancelAfterMs === undefined ? undefined : AbortSignal.timeout(cancelAfterMs);
  runtime.run(spec, { signal }).then(
    (r) =>
      out({
        id,
        result: { ...r, stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString() },
      }),
    (e: Error) => out({ id, error: { message: e.message, code: (e as { code?: string }).code } }),
  );
});
lines.on('close', () => void runtime.close().then(() => process.exit(0)));
