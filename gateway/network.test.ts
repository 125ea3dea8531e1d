// A job's `network` through the HTTP API against a real Redis: a value that is not a network is a 400 naming the
// field (and the entry, for an allowlist); a network above the tenant's ceiling is a 400 naming `network` and saying
// what the tenant may use, alone or inside a batch, and nothing of the request is queued; the same request within
// the ceiling is queued with its network, shown in the record, and becomes the sandbox's RunSpec.network when a
// worker parses the queue entry (worker/job-runner.ts sandboxSpec, the spec the runtime gets). The ceiling is read
// at each request, so raising it with the tenant store opens the network at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueuedJobSchema } from '../common/job.js';
import { NETWORK_LEVELS, type NetworkLevel } from '../common/network-policy.js';
import { RunSpecSchema } from '../common/run-spec.js';
import type { ResolvedImage } from '../images/store.js';
import { call, expectError, type GatewayHarness, startGatewayHarness } from '../test/gateway-harness.js';
import { sandboxSpec } from '../worker/job-runner.js';

const job = { image: 'busybox', command: ['true'] };
const ALLOW = { allow: ['pypi.org', '*.example.com:443', '203.0.113.0/24', '198.51.100.7:8000-8100'] };
/** One request per level: the least ceiling each needs. */
const ASKS = { none: 'none', allowlist: ALLOW, internet: 'internet' } as const;

let h: GatewayHarness;
beforeAll(async () => {
  h = await startGatewayHarness();
});
afterAll(() => h?.close());

describe('a network that is not one', () => {
  it.each([
    ['"wifi"', 'wifi', 'network'],
    ['an empty allowlist', { allow: [] }, 'network.allow'],
    ['an IPv6 entry', { allow: ['pypi.org', '2001:db8::1'] }, 'network.allow.1'],
    ['a bad port', { allow: ['pypi.org:70000'] }, 'network.allow.0'],
    ['a word that is no domain', { allow: ['localhost'] }, 'network.allow.0'],
    ['an unknown key beside allow', { allow: ['pypi.org'], deny: ['x.org'] }, 'network.deny'],
  ])('refuses %s with a 400 naming the field', async (_what, network, path) => {
    const { app, queue } = h.gateway();
    const t = await h.tenant({ network: 'internet' }); // the value is refused, not the ceiling
    const reply = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network } });
    expectError(reply, 400, 'invalid_spec', path);
    const batch = await call(app, 'POST', '/v1/batches', { tenant: t, body: { jobs: [job, { ...job, network }] } });
    expectError(batch, 400, 'invalid_spec', `jobs.1.${path}`);
    expect(await queue.count()).toBe(0);
  });

  it('says what is wrong with an allowlist entry, and what a network may be', async () => {
    const { app } = h.gateway();
    const t = await h.tenant({ network: 'internet' });
    const wifi = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network: 'wifi' } });
    expect(wifi.body.error.details).toEqual([
      {
        path: 'network',
        message: 'must be "none", "internet" or {"allow": [...]} (domains, *.domains, IPv4 addresses, CIDRs)',
      },
    ]);
    const reply = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network: { allow: ['::1'] } } });
    expect(reply.body.error.details).toEqual([
      { path: 'network.allow.0', message: '"::1": IPv6 is off in Lid sandboxes; name IPv4 addresses or domains' },
    ]);
  });
});

describe("a tenant's network ceiling", () => {
  const levels = (ceiling: NetworkLevel) => NETWORK_LEVELS.slice(0, NETWORK_LEVELS.indexOf(ceiling) + 1);

  it.each(NETWORK_LEVELS)(
    'a tenant at %s is refused anything above it, naming network, and gets the rest',
    async (c) => {
      const { app, queue } = h.gateway();
      const t = await h.tenant({ network: c });
      for (const level of NETWORK_LEVELS) {
        const network = ASKS[level];
        const reply = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network } });
        if (levels(c).includes(level)) {
          expect(reply.status, JSON.stringify(reply.body)).toBe(202);
          expect(reply.body.network).toEqual(network);
          expect((await queue.getJob(reply.body.id))?.data.request.network).toEqual(network);
          continue;
        }
        expectError(reply, 400, 'invalid_spec', 'network');
        const may = levels(c).map(
          (l) => ({ none: '"none"', allowlist: 'an allowlist ({"allow": [...]})' })[l as 'none'],
        );
        expect(reply.body.error.details).toEqual([
          {
            path: 'network',
            message: expect.stringContaining(
              `above this tenant's network ceiling "${c}": it may use ${may.join(' or ')}`,
            ),
            asked: level,
            ceiling: c,
            allowed: levels(c),
          },
        ]);
        expect(reply.body.error.message).toMatch(/^invalid job: network: /);
      }
      expect(await queue.count()).toBe(levels(c).length);
    },
  );

  it('refuses a batch with one job over the ceiling, naming it, and queues none of it', async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant({ network: 'allowlist' });
    const reply = await call(app, 'POST', '/v1/batches', {
      tenant: t,
      body: { jobs: [job, { ...job, network: ALLOW }, { ...job, network: 'internet' }] },
    });
    expectError(reply, 400, 'invalid_spec', 'jobs.2.network');
    expect(reply.body.error.details).toHaveLength(1);
    expect(await queue.count()).toBe(0);
    const within = await call(app, 'POST', '/v1/batches', {
      tenant: t,
      body: { jobs: [job, { ...job, network: ALLOW }] },
    });
    expect(within.status, JSON.stringify(within.body)).toBe(202);
    expect((await queue.getJobs(['prioritized', 'waiting'])).map((j) => j.data.request.network).sort()).toEqual([
      ALLOW,
      'none',
    ]);
  });

  it('gives a new tenant none, and a raised ceiling applies at the next request', async () => {
    const { app } = h.gateway();
    const t = await h.tenant();
    expect((await h.tenants.get(t.name))?.network).toBe('none');
    const before = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network: 'internet' } });
    expectError(before, 400, 'invalid_spec', 'network');
    expect(before.body.error.details[0].message).toContain('it may use "none"');
    await h.tenants.update(t.name, { network: 'internet' });
    const after = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network: 'internet' } });
    expect(after.status, JSON.stringify(after.body)).toBe(202);
  });
});

describe('an accepted network', () => {
  it('is in the record and the queue entry, and is the RunSpec.network a worker gives the runtime', async () => {
    const { app, queue } = h.gateway();
    const t = await h.tenant({ network: 'allowlist' });
    const reply = await call(app, 'POST', '/v1/jobs', { tenant: t, body: { ...job, network: ALLOW } });
    expect(reply.status, JSON.stringify(reply.body)).toBe(202);
    expect(reply.body.network).toEqual(ALLOW);
    expect((await call(app, 'GET', `/v1/jobs/${reply.body.id}`, { tenant: t })).body.network).toEqual(ALLOW);

    // What the worker does with the entry: parse it (worker/job-consumer.ts), build the sandbox's spec, which the
    // runtime parses with RunSpecSchema.
    const entry = QueuedJobSchema.parse((await queue.getJob(reply.body.id))!.data);
    const image: ResolvedImage = {
      name: 'busybox:latest',
      manifestDigest: 'sha256:0',
      config: { config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] } },
      layerDirs: ['/nonexistent/layer'],
      layerDigests: [],
    };
    const spec = RunSpecSchema.parse(sandboxSpec(entry.request, image, {}, { nofile: 1024, stack: 8 << 20 }));
    expect(spec.network).toEqual(ALLOW);

    // A job that names no network runs with none, and says so in its record.
    const plain = await call(app, 'POST', '/v1/jobs', { tenant: t, body: job });
    expect(plain.body.network).toBe('none');
    const plainEntry = QueuedJobSchema.parse((await queue.getJob(plain.body.id))!.data);
    expect(
      RunSpecSchema.parse(sandboxSpec(plainEntry.request, image, {}, { nofile: 1024, stack: 8 << 20 })).network,
    ).toBe('none');
  });

  it('is documented in /openapi.json with an example', async () => {
    const { app } = h.gateway();
    const doc = (await call(app, 'GET', '/openapi.json')).body;
    const request = doc.components.schemas.JobRequest;
    expect(request.properties.network.description).toMatch(/"none" \(the default: loopback only\), "internet"/);
    expect(request.properties.network.default).toBe('none');
    expect(JSON.stringify(request.properties.network)).toContain('"allow"');
    expect(request.examples[0].network).toEqual({ allow: expect.arrayContaining(['pypi.org']) });
    expect(doc.components.schemas.JobRecord.properties.network).toBeDefined();
  });
});
