// The runtime's public face, on the caller's thread: validates a RunSpec, hands it to the least busy spawner thread
// (sandbox-thread.ts) and resolves with its RunResult. `close()` ends the threads and removes this instance's
// cgroup directories; it is idempotent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LidError } from '../common/errors.js';
import { type RunResult, type RunSpecInput, RunSpecSchema } from '../common/run-spec.js';
import type { NetworkRequest } from '../common/network-policy.js';
import { parseOrThrow } from '../common/validation.js';
import { createCgroupDriver } from './cgroups/detect.js';
import type { CgroupDriver } from './cgroups/driver.js';
import { ensureInitBinary } from './init/init-binary.js';
import type { FromThread, PreparedRun, ThreadConfig, ToThread } from './protocol.js';
import { firewallTableExists } from './net/egress-firewall.js';
import { type NetworkingOptions, SandboxNetworking } from './net/sandbox-networking.js';
import { addressIndex, DEFAULT_POOL } from './net/pool.js';
import * as sys from './syscalls.js';
import { SLOT_SPAN, type UidRange, UidSlots } from './uid-slots.js';

export interface RuntimeOptions {
  /** Spawner threads; each hosts many sandboxes. Default: the number of CPUs, between 2 and 8. */
  threads?: number;
  /** cgroup (path inside each hierarchy) under which Lid makes its own; default: the one this process runs in. */
  cgroupParent?: string;
  /** Empty host directory used as the private tmpfs mount point inside each sandbox's mount namespace. */
  mountDir?: string;
  /** Host uids reserved for sandboxes (runtime/uid-slots.ts; default 0x70000000 to 0x7fffffff). */
  sandboxUids?: UidRange;
  /**
   * Let the process exit while the runtime is idle: its threads do not keep the event loop alive, and at exit
   * whatever still runs is killed and the cgroups removed, synchronously.
   */
  unref?: boolean;
  /**
   * Sandbox networking (runtime/net/), set up in this process's network namespace on the first networked run;
   * false: networked runs are refused. Default: the pool 10.231.0.0/16 and the default route's interface.
   */
  network?: NetworkingOptions | false;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Called with each chunk of output as it arrives (within the output limit). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => void;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_MOUNT_DIR = '/run/lid/rootfs';

interface Pending {
  /** The sandbox's uid slot, given back once its sandbox has ended (never when its thread was lost mid-run). */
  slotBase: number;
  /** A networked sandbox's address, whose firewall elements go once it has ended. */
  netAddress?: string;
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
  onOutput?: RunOptions['onOutput'];
  signal?: AbortSignal;
}

interface SpawnerThread {
  worker: Worker;
  pending: Map<number, Pending>;
}

function createThreadWorker(config: ThreadConfig): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./sandbox-thread.js', import.meta.url), { workerData: config });
  // Running from the TypeScript sources (tests, tsx): register tsx's loader in the thread before loading its entry.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./sandbox-thread.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: config });
}

function rehydrate(error: { name: string; message: string; code?: string; details?: Record<string, unknown> }): Error {
  if (error.name === 'LidError' && error.code)
    return new LidError(error.code as LidError['code'], error.message, error.details);
  return new LidError('setup_failed', error.message, { cause: error.name });
}

export class SandboxRuntime {
  private readonly threads: SpawnerThread[] = [];
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private networking: Promise<SandboxNetworking> | null = null;
  private networkingReady: SandboxNetworking | null = null;

  private constructor(
    private readonly cgroups: CgroupDriver,
    private readonly uids: UidSlots,
    private readonly threadConfig: ThreadConfig,
    private readonly unref: boolean,
    private readonly networkOptions: NetworkingOptions | false,
  ) {}

  static async start(options: RuntimeOptions = {}): Promise<SandboxRuntime> {
    if (process.getuid?.() !== 0)
      throw new LidError('unsupported', 'the sandbox runtime needs root (it creates namespaces, mounts and cgroups)');
    const initPath = ensureInitBinary();
    sys.markCloseOnExecFrom(3); // no descriptor this process inherited may reach a sandbox (kernel fact 10)
    const mountDir = options.mountDir ?? DEFAULT_MOUNT_DIR;
    fs.mkdirSync(mountDir, { recursive: true });
    const cgroups = createCgroupDriver({ parent: options.cgroupParent }); // first: it sweeps crashed runtimes' jobs
    let uids: UidSlots;
    try {
      uids = UidSlots.open(initPath, options.sandboxUids);
    } catch (e) {
      cgroups.close();
      throw e;
    }
    const runtime = new SandboxRuntime(
      cgroups,
      uids,
      { initPath, mountDir, cgroups: cgroups.layout },
      options.unref ?? false,
      options.network ?? { pool: DEFAULT_POOL },
    );
    if (runtime.unref) process.once('exit', () => runtime.cgroups.close());
    const count = options.threads ?? Math.min(8, Math.max(2, os.availableParallelism()));
    try {
      await Promise.all(Array.from({ length: count }, () => runtime.addThread()));
      // Where sandbox networking has been used before, a runtime that died (SIGKILL) may have left firewall
      // elements: start networking now, which sweeps them. Where it never was, nothing is touched until a
      // networked run asks for it. A failure here is not this runtime's end: the next networked run tries again
      // and reports it (a pool that clashes, say), while runs without network go on.
      if (runtime.networkOptions !== false && firewallTableExists()) await runtime.startNetworking().catch(() => {});
    } catch (e) {
      await runtime.close();
      throw e;
    }
    return runtime;
  }

  get cgroupVersion(): 1 | 2 {
    return this.cgroups.version;
  }

  /** uid slots this runtime holds (each with a lock file and a user namespace fd): at most its peak concurrency. */
  get uidSlotsHeld(): number {
    return this.uids.held;
  }

  get cgroupInstanceDirs(): readonly string[] {
    return this.cgroups.instanceDirs;
  }

  private addThread(): Promise<void> {
    const worker = createThreadWorker(this.threadConfig);
    const thread: SpawnerThread = { worker, pending: new Map() };
    this.threads.push(thread);
    return new Promise((resolve, reject) => {
      worker.on('message', (msg: FromThread) => {
        if (msg.type === 'ready') {
          this.updateRef(thread);
          return resolve();
        }
        const pending = thread.pending.get(msg.id);
        if (!pending) return;
        if (msg.type === 'output') return pending.onOutput?.(msg.stream, msg.chunk);
        thread.pending.delete(msg.id);
        // The thread answers only once the sandbox's cgroup is killed and gone. Its firewall elements go before its
        // slot (and with it its address) can be handed to the next sandbox.
        const net = pending.netAddress ? this.finishNetwork(pending.netAddress) : null;
        if (net && msg.type === 'result') msg.result.usage.netDenied = net.netDenied;
        this.uids.release(pending.slotBase);
        this.updateRef(thread);
        if (msg.type === 'result') pending.resolve(msg.result);
        else if (msg.type === 'cancelled')
          pending.reject(pending.signal?.reason ?? new DOMException('cancelled', 'AbortError'));
        else pending.reject(rehydrate(msg.error));
      });
      const lost = (why: string) => {
        reject(new LidError('setup_failed', why));
        this.threads.splice(this.threads.indexOf(thread) >>> 0, 1);
        // Their uids stay taken: a lost thread's sandboxes may still be dying (lid-init has a parent-death signal).
        for (const p of thread.pending.values()) p.reject(new LidError('internal', why));
        thread.pending.clear();
        if (!this.closing) this.addThread().catch(() => {}); // keep the pool at strength
      };
      worker.on('error', (e) => lost(`a spawner thread failed: ${e.message}`));
      worker.on('exit', (code) => {
        if (!this.closing) lost(`a spawner thread exited (code ${code})`);
      });
    });
  }

  /** With `unref`, a thread keeps the process alive only while it has sandboxes running. */
  private updateRef(thread: SpawnerThread): void {
    if (!this.unref) return;
    if (thread.pending.size > 0) thread.worker.ref();
    else thread.worker.unref();
  }

  private async prepare(
    input: RunSpecInput,
    options: RunOptions,
  ): Promise<{ prepared: PreparedRun; network: NetworkRequest }> {
    const spec = parseOrThrow(RunSpecSchema, input, 'run spec');
    const layers = (typeof spec.rootfs === 'string' ? [spec.rootfs] : spec.rootfs).map((l) => path.resolve(l));
    for (const layer of layers) {
      const st = await fs.promises.stat(layer).catch(() => null);
      if (!st?.isDirectory()) throw new LidError('not_found', `root filesystem layer ${layer} is not a directory`);
    }
    const prepared: PreparedRun = {
      layers,
      argv: spec.argv,
      env: { PATH: DEFAULT_PATH, ...spec.env },
      cwd: spec.cwd,
      stdin: spec.stdin === undefined ? null : typeof spec.stdin === 'string' ? Buffer.from(spec.stdin) : spec.stdin,
      files: spec.files,
      user:
        spec.user ??
        (spec.uid === undefined && spec.gid === undefined ? '' : `${spec.uid ?? 65534}:${spec.gid ?? 65534}`),
      slot: { base: 0, usernsFd: -1, maxId: SLOT_SPAN - 1 }, // taken when the run is handed to a thread
      hostname: spec.hostname,
      net: null, // set with the slot
      systemFiles: [],
      limits: spec.limits,
      rlimits: spec.rlimits,
      streamOutput: options.onOutput !== undefined,
    };
    return { prepared, network: spec.network };
  }

  /** Runs one sandbox. Rejects with LidError for a bad spec or a host failure, with an AbortError when cancelled. */
  async run(input: RunSpecInput, options: RunOptions = {}): Promise<RunResult> {
    if (this.closing) throw new LidError('internal', 'the runtime is closed');
    options.signal?.throwIfAborted();
    const { prepared, network } = await this.prepare(input, options);
    const networking = network === 'none' ? null : await this.startNetworking();
    options.signal?.throwIfAborted();
    const thread = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    if (!thread) throw new LidError('internal', 'no spawner thread is available');
    const id = this.nextId++;
    prepared.slot = { ...this.uids.take(), maxId: SLOT_SPAN - 1 };
    if (networking) {
      try {
        const admitted = networking.admit(this.uids.indexOf(prepared.slot.base), network, prepared.hostname);
        prepared.net = admitted.net;
        prepared.systemFiles = admitted.systemFiles;
      } catch (e) {
        this.uids.release(prepared.slot.base);
        throw e;
      }
    }
    const netAddress = prepared.net?.address;
    const result = new Promise<RunResult>((resolve, reject) => {
      const { onOutput, signal } = options;
      thread.pending.set(id, { slotBase: prepared.slot.base, netAddress, resolve, reject, onOutput, signal });
    });
    this.updateRef(thread);
    const cancel = () => thread.worker.postMessage({ type: 'cancel', id } satisfies ToThread);
    options.signal?.addEventListener('abort', cancel, { once: true });
    thread.worker.postMessage({ type: 'run', id, run: prepared } satisfies ToThread);
    try {
      return await result;
    } finally {
      options.signal?.removeEventListener('abort', cancel);
    }
  }

  /** Networking, made on first use; a failure is reported to that run and tried again by the next. */
  private startNetworking(): Promise<SandboxNetworking> {
    if (this.networkOptions === false)
      return Promise.reject(
        new LidError('unsupported', 'this Lid runtime was started without sandbox networking: use network "none"'),
      );
    this.networking ??= SandboxNetworking.start(this.networkOptions).then((n) => {
      // Elements left by runtimes that died holding their slots (a SIGKILLed worker), now nobody's.
      n.sweep((address) => {
        const index = this.slotOfAddress(address);
        return index >= 0 && this.uids.isHeld(index);
      });
      this.networkingReady = n;
      return n;
    });
    this.networking.catch(() => (this.networking = null));
    return this.networking;
  }

  private slotOfAddress(address: string): number {
    const pool = (this.networkOptions as NetworkingOptions).pool;
    return addressIndex(pool, address);
  }

  private finishNetwork(address: string): { netDenied: number } | null {
    // Only reached for a networked run, which was posted once networking had started.
    return this.networkingReady?.finish(address) ?? null;
  }

  /** Stops every sandbox still running, ends the threads and removes this instance's cgroups. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.threads.map((t) => t.worker.terminate().catch(() => {})));
      await (await this.networking?.catch(() => null))?.close();
      this.cgroups.close(); // kills anything a terminated thread left running, then removes the directories
      this.uids.close(); // only now: nothing of this runtime runs any more
    })();
    return this.closing;
  }
}
