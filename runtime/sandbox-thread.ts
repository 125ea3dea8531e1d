// A spawner thread: the worker_threads thread from which sandboxes are spawned. Namespaces, no_new_privs and seccomp
// filters are per thread and inherited by children (kernel facts 1, 2, 8), so each sandbox is set up here, where
// entering and leaving namespaces never disturbs the main thread's event loop. The thread carries no_new_privs and
// the 'spawner' part of the job's seccomp policy for good (every sandbox inherits it at no cost); lid-init adds the
// small 'init' part just before exec (runtime/seccomp.ts says why the policy is split). One thread hosts many
// sandboxes at once (setup is synchronous, supervision async).
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { isLidError } from '../common/errors.js';
import { cgroupDriverFor } from './cgroups/detect.js';
import { HostNamespaces, HostUnreachableError } from './namespaces.js';
import type { FromThread, SerializedError, ThreadConfig, ToThread } from './protocol.js';
import { RouteNetlink } from './net/rtnetlink.js';
import { Sandbox } from './sandbox.js';
import { buildSeccompProgram } from './seccomp.js';
import * as sys from './syscalls.js';

const config = workerData as ThreadConfig;
// linux/capability.h: CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2, CAP_FOWNER 3, CAP_SETGID 6, CAP_SETUID 7,
// CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_SYS_RESOURCE 24 (CAP_CHOWN 0: giving placed files to the job)
const INIT_CAPS = [0, 1, 2, 3, 6, 7, 12, 21, 24];
const CAP_LAST_CAP = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
const port = parentPort!;
const send = (msg: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

const host = new HostNamespaces();
// lid-init gets exactly the capabilities it needs before it drops everything (mount /proc, bring up loopback, raise
// rlimits, change ids, read image files of any mode), as ambient capabilities, with an empty bounding set: a bug in
// it cannot use any other, and it has no bounding set left to drop (64 prctl calls, about 50 us per sandbox).
sys.passOnlyCapabilities(INIT_CAPS, CAP_LAST_CAP);
sys.setNoNewPrivs();
sys.installSeccompFilter(buildSeccompProgram('spawner'));
const seccomp = buildSeccompProgram('init');
const cgroups = cgroupDriverFor(config.cgroups);
const running = new Map<number, Sandbox>();
// Opened here, before any sandbox: the socket belongs to the runtime's network namespace wherever the thread goes.
const netlink = new RouteNetlink();

function serialize(e: unknown): SerializedError {
  if (isLidError(e)) return { name: e.name, message: e.message, code: e.code, details: e.details };
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, code: 'setup_failed' };
}

async function execute(id: number, sandbox: Sandbox): Promise<void> {
  try {
    const result = await sandbox.execute();
    if (result === 'cancelled') send({ type: 'cancelled', id });
    // The output buffers are the thread's own (CappedOutput.bytes): hand them over instead of copying them.
    else
      send({ type: 'result', id, result }, [result.stdout.buffer as ArrayBuffer, result.stderr.buffer as ArrayBuffer]);
  } catch (e) {
    send({ type: 'error', id, error: serialize(e) });
    if (e instanceof HostUnreachableError) {
      // Could not return to the host's namespaces: this thread must not host another sandbox.
      for (const s of running.values()) s.kill('cancelled');
      process.exit(70);
    }
  } finally {
    running.delete(id);
  }
}

port.on('message', (msg: ToThread) => {
  if (msg.type === 'cancel') {
    running.get(msg.id)?.kill('cancelled');
    return;
  }
  const onOutput = msg.run.streamOutput
    ? (stream: 'stdout' | 'stderr', chunk: Buffer) => send({ type: 'output', id: msg.id, stream, chunk })
    : undefined;
  const sandbox = new Sandbox(
    msg.run,
    { host, cgroups, initPath: config.initPath, mountDir: config.mountDir, seccomp, netlink },
    `job-${msg.id}`,
    onOutput,
  );
  running.set(msg.id, sandbox);
  void execute(msg.id, sandbox);
});

send({ type: 'ready' });
