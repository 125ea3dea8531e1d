// A networked sandbox's veth pair, made on the spawner thread: the host end (a port of the bridge, isolated so that
// no two sandboxes meet at layer 2) in the runtime's network namespace, the peer `eth0` in the sandbox's, where
// lid-init gives it the sandbox's address. The thread keeps an fd of the sandbox's network namespace until the
// sandbox has ended, so the host end (and its byte counters) outlives the sandbox's last process; closing that fd
// lets the kernel destroy the namespace and, with it, both ends. Deleting the pair ourselves would cost ~18 ms
// (RTNL and an RCU grace period on the critical path); the kernel's asynchronous cleanup costs the job nothing.
import fs from 'node:fs';
import type { LidError } from '../../common/errors.js';
import { macFor, type RouteNetlink } from './rtnetlink.js';

/** What the thread needs to wire a sandbox (runtime/net/host-network.ts hands it out). */
export interface LinkPlan {
  hostName: string;
  bridgeIndex: number;
  /** The sandbox's address, from which its MAC follows (rtnetlink.ts macFor says why). */
  address: string;
}

export interface LinkCounters {
  /** Bytes the sandbox received and sent (the host end counts them the other way round). */
  netRxBytes: number;
  netTxBytes: number;
}

/**
 * Closes an fd from holdNetworkNamespace(). Through fs, which opened it: in a worker thread Node tracks the fds
 * fs opens, and one closed behind its back (a raw close(2)) draws a warning when its number comes back.
 */
export function closeNamespaceFd(fd: number): void {
  fs.closeSync(fd);
}

export class SandboxLink {
  private constructor(
    private readonly nl: RouteNetlink,
    private readonly index: number,
    private netnsFd: number,
  ) {}

  /** Called on the spawner thread while it is inside the sandbox's new namespaces: an fd that keeps its netns. */
  static holdNetworkNamespace(): number {
    return fs.openSync('/proc/thread-self/ns/net', 'r');
  }

  /** Makes the pair; called back in the runtime's namespace. Takes the namespace fd (closed by close()). */
  static create(nl: RouteNetlink, plan: LinkPlan, netnsFd: number): SandboxLink {
    const tryCreate = (hostName: string) =>
      nl.createVeth({
        hostName,
        masterIndex: plan.bridgeIndex,
        peerName: 'eth0',
        peerNetnsFd: netnsFd,
        peerMac: macFor(plan.address),
      });
    let hostName = plan.hostName;
    try {
      tryCreate(hostName);
    } catch (e) {
      // The same name from a runtime that died a moment ago may still be going away with its namespace.
      if ((e as LidError).details?.errno !== 'EEXIST') throw e;
      hostName = `${plan.hostName.slice(0, 11)}r${process.pid % 1000}`.slice(0, 15);
      tryCreate(hostName);
    }
    const link = nl.link({ name: hostName });
    if (!link) throw new Error(`the veth ${hostName} vanished as it was made`);
    nl.isolatePort(link.index); // on failure the caller closes the fd: the pair goes with the namespace
    return new SandboxLink(nl, link.index, netnsFd);
  }

  /** The sandbox's traffic so far, read from the host end. */
  counters(): LinkCounters {
    const link = this.nl.link({ index: this.index });
    return { netRxBytes: link?.txBytes ?? 0, netTxBytes: link?.rxBytes ?? 0 };
  }

  /** Lets the namespace go: the kernel then removes both ends. Idempotent. */
  close(): void {
    if (this.netnsFd >= 0) closeNamespaceFd(this.netnsFd);
    this.netnsFd = -1;
  }
}
