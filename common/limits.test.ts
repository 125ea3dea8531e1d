// The limits rule shared by the gateway and the workers, without Redis: what is over is named with its ceiling and
// who set it, what is left out is lowered to the ceiling only when its default is above it, and the lower of two
// ceilings wins.
import os from 'node:os';
import { expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { capCeilings, fitLimits, lowerOf, runLimits, serverCaps, tenantCeilings } from './limits.js';
import { DEFAULT_LIMITS } from './run-spec.js';

const MiB = 1024 * 1024;
const roomy = {
  timeoutMs: 60_000,
  memoryBytes: 1024 * MiB,
  cpus: 2,
  pids: 256,
  outputBytes: 16 * MiB,
  diskBytes: 1024 * MiB,
};

it('takes limits at or under their ceilings as asked, and names each one above', () => {
  const ceilings = tenantCeilings(roomy);
  expect(fitLimits({ pids: 256, cpus: 0.5 }, ceilings)).toEqual({ limits: { pids: 256, cpus: 0.5 }, problems: [] });
  const { problems } = fitLimits({ pids: 257, cpus: 2.5, timeoutMs: 1000 }, ceilings, 'jobs.3.');
  expect(problems).toEqual([
    {
      path: 'jobs.3.limits.cpus',
      message: "jobs.3.limits.cpus 2.5 is above this tenant's ceiling of 2",
      asked: 2.5,
      ceiling: 2,
    },
    {
      path: 'jobs.3.limits.pids',
      message: "jobs.3.limits.pids 257 is above this tenant's ceiling of 256",
      asked: 257,
      ceiling: 256,
    },
  ]);
});

it('lowers a left-out limit to its ceiling only when the default is above it', () => {
  const tight = capCeilings({ ...roomy, pids: 64, memoryBytes: 128 * MiB }, 'worker');
  expect(fitLimits({}, tight).limits).toEqual({ pids: 64, memoryBytes: 128 * MiB });
  expect(runLimits(fitLimits({ cpus: 0.5 }, tight).limits)).toEqual({
    ...DEFAULT_LIMITS,
    cpus: 0.5,
    pids: 64,
    memoryBytes: 128 * MiB,
  });
  expect(fitLimits({ pids: 65 }, tight).problems[0]!.message).toBe(
    "limits.pids 65 is above this worker's cap of 64 (LID_CAP_PIDS)",
  );
});

it('holds each limit under the lower of two ceilings; on a tie the first is named', () => {
  const both = lowerOf(tenantCeilings(roomy), capCeilings({ ...roomy, pids: 100, cpus: 4 }, 'server'));
  expect(both.pids).toEqual({ value: 100, what: "this server's cap", setBy: 'LID_CAP_PIDS' });
  expect(both.cpus).toEqual({ value: 2, what: "this tenant's ceiling" });
  expect(both.timeoutMs.what).toBe("this tenant's ceiling");
});

it("reads the server's caps from the configuration, cpus defaulting to this machine's", () => {
  expect(serverCaps(loadConfig({}))).toEqual({
    timeoutMs: 3_600_000,
    memoryBytes: 16 * 1024 * MiB,
    cpus: os.availableParallelism(),
    pids: 4096,
    outputBytes: 64 * MiB,
    diskBytes: 16 * 1024 * MiB,
  });
  expect(serverCaps(loadConfig({ LID_CAP_CPUS: '0.5', LID_CAP_OUTPUT: '512k' }))).toMatchObject({
    cpus: 0.5,
    outputBytes: 512 * 1024,
  });
});
