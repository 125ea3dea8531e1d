// Sandbox networking end to end, with real packets in a world of namespaces the test makes and removes
// (test/net-world.ts): a runtime in a "node" namespace whose uplink leads into a "world" namespace with HTTP servers
// on 203.0.113.10 and .11 and a DNS server. The operator's egress policy allows 203.0.113.10 only (documentation
// addresses are refused by default), so .11 stands for what an operator refuses. Each refusal has beside it a run
// where the same request succeeds, so no test passes because the request itself was broken.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { busyboxRootfs } from '../../test/busybox-rootfs.js';
import { NetRunner, NetWorld, NODE_UPLINK_ADDRESS, type RunnerResult, WORLD_GATEWAY } from '../../test/net-world.js';
import { nodeScriptArgs } from '../../test/node-script.js';
import { describePrivileged } from '../../test/privileged.js';
import { readRoutes } from './pool.js';

const lidBin = new URL('../../bin/lid.js', import.meta.url).pathname;
const ALLOWED = '203.0.113.10';
const REFUSED = '203.0.113.11';
const SERVICE = '203.0.113.12'; // stands for a remote Redis: the operator's policy allows it, Lid protects it
// An HTTP GET with busybox's nc (its static wget crashes looking up the service name outside a full libc).
// -w: seconds nc waits (a refused connection is dropped, so each refusal costs that long).
const get = (target: string, wait = 1) => {
  const [host, port = '80'] = target.split(':');
  return `(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w ${wait} ${host} ${port} 2>/dev/null | grep hello || echo "FAIL ${target}")`;
};

describePrivileged('sandbox networking, in a test world of its own', () => {
  let world: NetWorld;
  let runner: NetRunner;
  const rootfs = busyboxRootfs();
  const sh = (network: unknown, script: string, timeoutMs = 20_000): Promise<RunnerResult> =>
    runner.run({ rootfs, argv: ['sh', '-c', script], network, limits: { timeoutMs } });
  const runnerOptions = {
    upstreams: [{ address: WORLD_GATEWAY, port: 53 }],
    allowPrivateEgress: `${ALLOWED}/32,${SERVICE}/32`,
    protect: [SERVICE],
    listen: [{ address: '0.0.0.0', port: 7000 }],
  };
  // Elements of the per-sandbox sets and maps of table inet lid (the operator's deny, refused and exempt stay).
  const PER_SANDBOX = ['admitted', 'internet', 'allow', 'resolved', 'denied', 'generation', 'current'];
  const nftElements = () => {
    const text = execFileSync('nsenter', [`--net=/run/netns/${world.node}`, 'nft', 'list', 'table', 'inet', 'lid'], {
      encoding: 'utf8',
    });
    return [...text.matchAll(/(?:set|map) (\w+) \{([^}]*)\}/g)]
      .filter(([, name, body]) => PER_SANDBOX.includes(name!) && /elements = /.test(body!))
      .map(([, name, body]) => `${name}: ${body!.replace(/\s+/g, ' ')}`);
  };

  /**
   * Sandbox veths still in the node namespace, once they had time to go: the kernel destroys a namespace (and its
   * veth pair) asynchronously after its last process and fd, in well under a second here, in seconds under the v2
   * VM's emulated CPU.
   */
  const vethsLeft = async (): Promise<string[]> => {
    const left = () => world.nodeLinks().filter((l) => l.startsWith('lv'));
    for (let waited = 0; waited < 20_000 && left().length > 0; waited += 200)
      await new Promise((r) => setTimeout(r, 200));
    return left();
  };

  beforeAll(async () => {
    world = NetWorld.create();
    await world.serve({
      http: [
        { address: ALLOWED, ports: [80, 8080] },
        { address: REFUSED, ports: [80] },
        { address: SERVICE, ports: [80] },
      ],
      zone: {
        'allowed.lid.test': [ALLOWED],
        'other.lid.test': [REFUSED],
        'a.wild.lid.test': [ALLOWED],
        'alias.lid.test': { cname: 'target.elsewhere.test' },
        'target.elsewhere.test': [ALLOWED],
      },
    });
    runner = await NetRunner.start(world, runnerOptions);
  }, 60_000);

  afterAll(async () => {
    await runner?.stop();
    world?.destroy();
  });

  it('none reaches nothing; internet reaches the world through NAT, with its traffic counted', async () => {
    const none = await sh('none', `${get(ALLOWED)}; cat /proc/net/dev | grep -c eth0`);
    expect(none.stdout).toContain(`FAIL ${ALLOWED}`);
    expect(none.usage.netRxBytes).toBeUndefined();
    const internet = await sh('internet', get(ALLOWED));
    expect(internet.stdout).toContain(`hello from ${ALLOWED}:80 to ${NODE_UPLINK_ADDRESS}`);
    expect(internet.usage.netRxBytes).toBeGreaterThan(100);
    expect(internet.usage.netTxBytes).toBeGreaterThan(100);
    expect(internet.usage.netDenied).toBe(0);
  }, 30_000);

  it("internet is bounded by the operator's egress policy, and refusals are counted", async () => {
    const r = await sh('internet', `${get(ALLOWED)}; ${get(REFUSED)}`);
    expect(r.stdout).toContain(`hello from ${ALLOWED}:80`);
    expect(r.stdout).toContain(`FAIL ${REFUSED}`);
    expect(r.usage.netDenied).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('an allowlist of addresses and ports reaches exactly those, and never what the operator refuses', async () => {
    const r = await sh(
      { allow: [`${ALLOWED}:8080`, REFUSED] },
      `${get(`${ALLOWED}:8080`)}; ${get(ALLOWED)}; ${get(REFUSED)}`,
    );
    expect(r.stdout).toContain(`hello from ${ALLOWED}:8080`);
    expect(r.stdout).toContain(`FAIL ${ALLOWED}\n`); // port 80 is not in the list
    expect(r.stdout).toContain(`FAIL ${REFUSED}`); // listed, but refused by the operator's policy
  }, 30_000);

  it('an allowed name works on the first connect after its lookup; its neighbours and other names do not', async () => {
    const script = [
      `${get(ALLOWED)}`, // not yet resolved: not allowed
      'nslookup allowed.lid.test',
      `${get(ALLOWED)}`,
      'nslookup other.lid.test || echo NX-other',
      'nslookup a.wild.lid.test',
      'nslookup wild.lid.test || echo NX-wild',
      `${get(REFUSED)}`,
      'cat /proc/net/if_inet6 | wc -l',
      'cat /etc/resolv.conf',
    ].join('; ');
    const r = await sh({ allow: ['allowed.lid.test', '*.wild.lid.test'] }, script);
    const lines = r.stdout;
    expect(lines.indexOf(`FAIL ${ALLOWED}`)).toBeGreaterThanOrEqual(0);
    expect(lines.indexOf(`FAIL ${ALLOWED}`)).toBeLessThan(lines.indexOf(`hello from ${ALLOWED}:80`));
    expect(lines).toContain('NX-other');
    expect(lines).toContain('NX-wild');
    expect(lines).toMatch(/Name:\s+a\.wild\.lid\.test/);
    expect(lines).toContain(`FAIL ${REFUSED}`);
    expect(lines).toMatch(/^0$/m); // no IPv6 address at all
    expect(lines).toMatch(/^nameserver 10\.231\.255\.\d+$/m); // this runtime's resolver, in the pool's last /26
  }, 40_000);

  it("no policy reaches Lid's own services, even where the operator's egress policy allows their address", async () => {
    const internet = await sh('internet', `${get(SERVICE)}; ${get(ALLOWED)}`);
    expect(internet.stdout).toContain(`FAIL ${SERVICE}`);
    expect(internet.stdout).toContain(`hello from ${ALLOWED}:80`); // exempted the same way, and reached
    const listed = await sh({ allow: [`${SERVICE}:80`] }, get(SERVICE));
    expect(listed.stdout).toContain(`FAIL ${SERVICE}`);
  }, 30_000);

  it('sandboxes reach neither each other nor the host (its own addresses, the bridge)', async () => {
    const listener = sh('internet', 'timeout 6 nc -l -p 9000; echo listener-done');
    await new Promise((r) => setTimeout(r, 500));
    const probes = [
      'for i in 2 3 4 5 6; do echo x | nc -w 1 10.231.0.$i 9000 && echo "REACHED 10.231.0.$i"; done',
      `nc -w 1 10.231.0.1 7000 && echo REACHED-bridge`,
      `nc -w 1 ${NODE_UPLINK_ADDRESS} 7000 && echo REACHED-host`,
      get(ALLOWED),
    ].join('; ');
    const r = await sh('internet', probes);
    expect(r.stdout).not.toContain('REACHED');
    expect(r.stdout).not.toContain('host service');
    expect(r.stdout).toContain(`hello from ${ALLOWED}:80`); // the same sandbox does reach the world
    await listener;
  }, 30_000);

  it('lid sandbox run --network works beside another runtime of the same namespace; none still reaches nothing', () => {
    const lid = (network: string) =>
      spawnSync(
        'nsenter',
        [
          `--net=/run/netns/${world.node}`,
          process.execPath,
          lidBin,
          'sandbox',
          'run',
          '--rootfs',
          rootfs,
          '--network',
          network,
          '--',
          'sh',
          '-c',
          `nslookup allowed.lid.test >/dev/null && ${get(ALLOWED)}`,
        ],
        {
          encoding: 'utf8',
          timeout: 60_000,
          env: {
            ...process.env,
            LID_DNS_UPSTREAM: WORLD_GATEWAY,
            LID_ALLOW_PRIVATE_EGRESS: `${ALLOWED}/32`,
          },
        },
      );
    const allowed = lid('allow=allowed.lid.test:80');
    expect(allowed.stderr).toBe('');
    expect(allowed.stdout).toContain(`hello from ${ALLOWED}:80`);
    const none = lid('none');
    expect(none.stdout).not.toContain('hello');
    expect(none.status).not.toBe(0);
  }, 90_000);

  it('through the service: a job asking for an allowlist reaches it, with usage and a sandbox.network span', async () => {
    const child = fileURLToPath(new URL('../../test/net-service-child.ts', import.meta.url));
    const r = spawnSync(
      'nsenter',
      [
        `--net=/run/netns/${world.node}`,
        process.execPath,
        ...nodeScriptArgs(child),
        `nslookup allowed.lid.test >/dev/null && ${get(ALLOWED)}`,
        WORLD_GATEWAY,
        `${ALLOWED}/32`,
        'allowed.lid.test:80',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    type JobView = { state: string; result?: { stdout: string; usage: Record<string, number> } };
    const out = JSON.parse(r.stdout) as {
      allowed: { status: number; record: JobView };
      none: { status: number; record: JobView };
      overCeiling: { status: number; record: { error?: { message: string } } };
      trace: { spans: { name: string; attributes: Record<string, unknown> }[] };
    };
    expect(out.allowed.status).toBe(200);
    expect(out.allowed.record.result?.stdout).toContain(`hello from ${ALLOWED}:80`);
    expect(out.allowed.record.result?.usage.netRxBytes).toBeGreaterThan(100);
    expect(out.none.record.result?.stdout).not.toContain('hello');
    expect(out.overCeiling.status).toBe(400); // the tenant may use an allowlist, not the internet
    const span = out.trace.spans.find((s) => s.name === 'sandbox.network');
    expect(span?.attributes).toMatchObject({ 'lid.network': 'allow', 'lid.network.allow': ['allowed.lid.test:80'] });
    expect(span?.attributes['lid.usage.net_rx_bytes']).toBeGreaterThan(100);
  }, 150_000);

  it('refuses a pool that overlaps what the namespace already routes, naming the overlap and the setting', async () => {
    const other = await NetRunner.start(world, { ...runnerOptions, listen: [], pool: '198.18.0.0/24' }); // holds the uplink
    try {
      const refused = await other.run({ rootfs, argv: ['true'], network: 'internet' }).then(
        () => 'ran',
        (e: Error) => e.message,
      );
      expect(refused).toMatch(/pool 198\.18\.0\.0\/24 overlaps .*198\.18\.0\.2.*LID_NET_POOL/);
      expect((await other.run({ rootfs, argv: ['true'], network: 'none' })).status).toBe('ok');
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('takes the uplink it is given, and refuses one the namespace does not have, naming the setting', async () => {
    const named = await NetRunner.start(world, { ...runnerOptions, listen: [], uplink: 'up0' });
    try {
      expect((await named.run({ rootfs, argv: ['sh', '-c', get(ALLOWED)], network: 'internet' })).stdout).toContain(
        `hello from ${ALLOWED}:80 to ${NODE_UPLINK_ADDRESS}`,
      );
    } finally {
      await named.stop();
    }
    // A name nobody has, and the machine's own uplink (which /sys, still the machine's under nsenter, does show).
    const machineUplink = readRoutes().defaultInterface;
    for (const uplink of ['eth9', ...(machineUplink && machineUplink !== 'up0' ? [machineUplink] : [])]) {
      const wrong = await NetRunner.start(world, { ...runnerOptions, listen: [], uplink });
      try {
        const refused = await wrong.run({ rootfs, argv: ['true'], network: 'internet' }).then(
          () => 'ran',
          (e: Error) => e.message,
        );
        expect(refused).toContain(`LID_NET_UPLINK names ${uplink}, which this network namespace does not have`);
      } finally {
        await wrong.stop();
      }
    }
  }, 60_000);

  it('100 concurrent networked jobs all work, and leave no veth or firewall element behind', async () => {
    // 100 sandboxes at once on two shared cores: nc waits up to 10 s for an answer.
    const runs = await Promise.all(Array.from({ length: 100 }, () => sh('internet', get(ALLOWED, 10), 30_000)));
    const failed = runs.filter((r) => !r.stdout.includes(`hello from ${ALLOWED}`));
    expect(failed.map((r) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr, usage: r.usage }))).toEqual([]);
    expect(await vethsLeft()).toEqual([]);
    expect(nftElements()).toEqual([]);
  }, 120_000);

  it('leaves nothing after many mixed networked runs, a cancelled one and a timed-out one', async () => {
    const runs = Number(process.env.LID_NET_LEAK_RUNS ?? 1000);
    const policies = ['none', 'internet', { allow: [`${ALLOWED}:80`] }, { allow: ['allowed.lid.test'] }];
    let started = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (started < runs) {
          const network = policies[started++ % policies.length];
          const r = await sh(network, 'true', 20_000);
          if (r.status !== 'ok') failures.push(`${JSON.stringify(network)}: ${r.status} ${r.stderr}`);
        }
      }),
    );
    expect(failures).toEqual([]);
    const cancelled = await runner
      .run({ rootfs, argv: ['sleep', '30'], network: 'internet' }, { cancelAfterMs: 300 })
      .then(
        () => 'finished',
        (e: Error) => e.message,
      );
    expect(cancelled).toMatch(/abort|cancel|timeout/i);
    const timedOut = await sh({ allow: [`${ALLOWED}:80`] }, 'sleep 30', 300);
    expect(timedOut.status).toBe('timeout');
    expect(await vethsLeft()).toEqual([]);
    expect(nftElements()).toEqual([]);
  }, 600_000);

  it('a runtime SIGKILLed mid-job leaves nothing once the next one has started (its sweep)', async () => {
    const running = sh('internet', `${get(ALLOWED)}; sleep 30`).catch(() => null);
    await new Promise((r) => setTimeout(r, 1500));
    expect(nftElements().length).toBeGreaterThan(0);
    await runner.kill();
    await running;
    runner = await NetRunner.start(world, runnerOptions);
    // The next runtime sweeps at its start, before any networked run.
    expect(nftElements()).toEqual([]);
    const r = await sh({ allow: [`${ALLOWED}:8080`] }, get(`${ALLOWED}:8080`));
    expect(r.stdout).toContain(`hello from ${ALLOWED}:8080`);
    expect(await vethsLeft()).toEqual([]);
    expect(nftElements()).toEqual([]);
  }, 60_000);
});
