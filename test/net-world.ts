// A private internet for networking tests and benchmarks, built from network namespaces the caller creates and
// removes (never a route, address or rule of the machine's own): a "world" namespace that plays the internet, with
// HTTP servers on documentation addresses (203.0.113.0/24) and a DNS server, and a "node" namespace where a Lid
// runtime runs, whose uplink is a veth into the world and whose default route points there. Nothing a test sends
// can leave: the node's only way out is the world, and the world has no way out at all.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { nodeScriptArgs } from './node-script.js';

export const WORLD_GATEWAY = '198.18.0.1'; // the world's end of the uplink; its DNS server listens here
export const NODE_UPLINK_ADDRESS = '198.18.0.2';

export interface WorldSpec {
  /** Addresses the world answers HTTP on, each with its ports. */
  http: { address: string; ports: number[] }[];
  /** DNS zone: name -> A addresses, or a CNAME target. */
  zone: Record<string, string[] | { cname: string }>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export class NetWorld {
  private servers: ChildProcess | null = null;

  private constructor(
    readonly world: string,
    readonly node: string,
  ) {}

  /** Makes both namespaces and the link between them; start the servers with serve(). */
  static create(tag = crypto.randomBytes(3).toString('hex')): NetWorld {
    const w = new NetWorld(`lidt-${tag}-w`, `lidt-${tag}-n`);
    try {
      ip('netns', 'add', w.world);
      ip('netns', 'add', w.node);
      ip('link', 'add', 'up0', 'netns', w.node, 'type', 'veth', 'peer', 'name', 'down0', 'netns', w.world);
      ip('-n', w.world, 'link', 'set', 'lo', 'up');
      ip('-n', w.world, 'addr', 'add', `${WORLD_GATEWAY}/30`, 'dev', 'down0');
      ip('-n', w.world, 'link', 'set', 'down0', 'up');
      ip('-n', w.node, 'link', 'set', 'lo', 'up');
      ip('-n', w.node, 'addr', 'add', `${NODE_UPLINK_ADDRESS}/30`, 'dev', 'up0');
      ip('-n', w.node, 'link', 'set', 'up0', 'up');
      ip('-n', w.node, 'route', 'add', 'default', 'via', WORLD_GATEWAY);
      execFileSync('ip', ['netns', 'exec', w.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    } catch (e) {
      w.destroy();
      throw e;
    }
    return w;
  }

  /** Starts the world's HTTP and DNS servers; resolves once they listen. */
  async serve(spec: WorldSpec): Promise<void> {
    for (const { address } of spec.http) ip('-n', this.world, 'addr', 'add', `${address}/32`, 'dev', 'lo');
    const script = fileURLToPath(new URL('./net-world-servers.ts', import.meta.url));
    const child = spawn('nsenter', [`--net=/run/netns/${this.world}`, process.execPath, ...nodeScriptArgs(script)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.servers = child;
    child.stdin.end(JSON.stringify({ ...spec, dns: WORLD_GATEWAY }));
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the test world's servers exited (${code})`)));
    });
  }

  /** What the node namespace holds that a runtime makes: links, nftables elements (for the leak checks). */
  nodeLinks(): string[] {
    const out = execFileSync('ip', ['-n', this.node, '-o', 'link', 'show'], { encoding: 'utf8' });
    return out
      .split('\n')
      .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
      .filter(Boolean);
  }

  destroy(): void {
    this.servers?.kill('SIGKILL');
    for (const ns of [this.node, this.world]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // not made, or already gone
      }
    }
  }
}

export interface RunnerResult {
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  usage: Record<string, number | boolean | null>;
  timings: Record<string, number>;
}

/** A runtime in the node namespace (test/net-runner.ts), driven over its stdin and stdout. */
export class NetRunner {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: RunnerResult) => void; reject: (e: Error) => void }>();
  private buffered = '';

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString();
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const msg = JSON.parse(line) as { id?: number; result?: RunnerResult; error?: { message: string } };
        if (msg.id === undefined) continue;
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.result) w?.resolve(msg.result);
        else w?.reject(new Error(msg.error?.message ?? 'no result'));
      }
    });
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`the runner exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static async start(world: NetWorld, options: Record<string, unknown>): Promise<NetRunner> {
    const script = fileURLToPath(new URL('./net-runner.ts', import.meta.url));
    // nsenter, not `ip netns exec`: that one also mounts a fresh /sys, hiding the cgroup hierarchies the runtime needs.
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${world.node}`, process.execPath, ...nodeScriptArgs(script), JSON.stringify(options)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const runner = new NetRunner(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the runner exited before it was ready (${code})`)));
    });
    return runner;
  }

  run(spec: Record<string, unknown>, opts: { cancelAfterMs?: number } = {}): Promise<RunnerResult> {
    return this.request({ spec, ...opts }) as Promise<RunnerResult>;
  }

  /** Interleaved /bin/true runs inside the runner (test/net-runner.ts): samples in ms by contender. */
  bench(req: { rootfs: string; runs: number; bwrap?: string }): Promise<Record<string, number[]>> {
    return this.request({ bench: req }) as unknown as Promise<Record<string, number[]>>;
  }

  private request(body: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: RunnerResult) => void, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  /** Ends the runtime cleanly (it closes when its stdin ends). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end();
    await exited;
  }

  /** SIGKILL, as a crashing worker dies (nsenter execs the runtime: the child is the runtime itself). */
  async kill(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}
