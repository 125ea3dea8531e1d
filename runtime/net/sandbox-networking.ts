// Sandbox networking as the runtime's main thread runs it, made on the first networked run (a runtime that never
// runs one changes nothing in its network namespace): the bridge and uplink (host-network.ts), the nftables
// table that enforces each sandbox's policy from the host side (egress-firewall.ts), and Lid's resolver on the
// bridge (sandbox-resolver.ts), which answers only names a sandbox's policy allows and opens the firewall for the
// addresses it hands out. Per sandbox: admit() before its thread makes the veth, finish() once it has ended.
import { LidError } from '../../common/errors.js';
import { EgressPolicy } from '../../common/egress-policy.js';
import { type DnsServer, dnsUpstreamServers } from '../../common/net-settings.js';
import { compileNetwork, type NetworkPolicy, type NetworkRequest } from '../../common/network-policy.js';
import { EgressFirewall } from './egress-firewall.js';
import { BRIDGE, HostNetwork, resolverFiles, type SandboxNet } from './host-network.js';
import { bridgeAddress, hostAddresses, type Pool, resolverBlock } from './pool.js';
import { SandboxResolver } from './sandbox-resolver.js';

export interface NetworkingOptions {
  pool: Pool;
  /** The interface sandboxes' traffic leaves by; default: the default route's. */
  uplink?: string;
  /** Upstream DNS servers; default: the nameservers of /etc/resolv.conf, read when networking starts. */
  upstreams?: DnsServer[];
  /** Addresses no sandbox may reach whatever its policy: Lid's Redis and gateway (when not on this host). */
  protect?: string[];
  /** The operator's egress policy (LID_ALLOW_PRIVATE_EGRESS): what `internet` reaches beyond public addresses. */
  egress?: EgressPolicy;
}

/** Always denied, whatever a policy says (issue 10): loopback, link-local with cloud metadata, and "this host". */
const ALWAYS_DENIED = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '100.100.100.200/32', '255.255.255.255/32'];

export class SandboxNetworking {
  private readonly policies = new Map<string, NetworkPolicy>();
  /** Addresses whose leftovers (from a runtime that died holding their slot) this runtime has removed. */
  private readonly swept = new Set<string>();

  private constructor(
    private readonly host: HostNetwork,
    private readonly firewall: EgressFirewall,
    private readonly resolver: SandboxResolver,
    private readonly nameserver: { address: string; release: () => void },
  ) {}

  static async start(opts: NetworkingOptions): Promise<SandboxNetworking> {
    const host = HostNetwork.open({ pool: opts.pool, uplink: opts.uplink });
    const gateway = bridgeAddress(opts.pool);
    const egress = opts.egress ?? EgressPolicy.DEFAULT;
    const firewall = EgressFirewall.open({
      bridge: BRIDGE,
      pool: opts.pool,
      gateway,
      uplink: host.uplink,
      resolvers: resolverBlock(opts.pool),
      deny: [
        ...ALWAYS_DENIED,
        `${opts.pool.address}/${opts.pool.prefix}`,
        ...hostAddresses().map((a) => `${a.network.address}/32`),
        ...(opts.protect ?? []).filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)).map((a) => `${a}/32`),
      ],
      refused: egress.refusedIpv4Ranges(),
      exempt: egress.exemptIpv4Ranges(),
    });
    let upstreams: DnsServer[];
    try {
      upstreams = dnsUpstreamServers(opts.upstreams);
    } catch (e) {
      throw new LidError('unsupported', `sandbox networking has no DNS server to forward to: ${(e as Error).message}`);
    }
    const networking: { current?: SandboxNetworking } = {};
    let resolver: SandboxResolver;
    let nameserver: { address: string; release: () => void } | undefined;
    try {
      nameserver = host.claimResolverAddress();
      resolver = await SandboxResolver.start({
        listen: { address: nameserver.address, port: 53 },
        upstreams,
        policyFor: (source) => networking.current?.policies.get(source),
        allow: (source, address, ports, ttl) => {
          firewall.allowResolved(source, address, ports, ttl);
        },
      });
    } catch (e) {
      nameserver?.release();
      firewall.close();
      throw e;
    }
    networking.current = new SandboxNetworking(host, firewall, resolver, nameserver);
    return networking.current;
  }

  /** Sets up the host side for the sandbox of uid slot `slotIndex`; its thread then makes the veth. */
  admit(
    slotIndex: number,
    request: NetworkRequest,
    hostname: string,
  ): { net: SandboxNet; systemFiles: { path: string; content: string }[] } {
    const net = this.host.sandbox(slotIndex);
    if (!this.swept.has(net.address)) {
      this.firewall.release(net.address); // a runtime that died with this slot may have left elements behind
      this.swept.add(net.address);
    }
    const policy = compileNetwork(request);
    this.firewall.admit(net.address, policy);
    this.policies.set(net.address, policy);
    return { net, systemFiles: resolverFiles(net, this.nameserver.address, hostname) };
  }

  /** After the sandbox has ended: what its policy refused, and nothing of it left in the firewall. */
  finish(address: string): { netDenied: number } {
    this.policies.delete(address);
    try {
      return { netDenied: this.firewall.denied(address) };
    } finally {
      this.firewall.release(address);
    }
  }

  /** Removes the elements of sandboxes no runtime runs any more (`inUse`: held by some live runtime). */
  sweep(inUse: (address: string) => boolean): number {
    let removed = 0;
    for (const address of this.firewall.sandboxes()) {
      if (this.policies.has(address) || inUse(address)) continue;
      this.firewall.release(address);
      removed++;
    }
    return removed;
  }

  async close(): Promise<void> {
    await this.resolver.close();
    for (const address of this.policies.keys()) this.firewall.release(address);
    this.policies.clear();
    this.firewall.close();
    this.nameserver.release();
  }
}
