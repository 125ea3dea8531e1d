// A job's spans on the worker, continuing the trace whose traceparent came with it on the queue:
//   job.process      one per time a worker takes the job (parent of the rest; also when it is only put back for the
//                    tenant's concurrency limit, marked lid.outcome=delayed)
//   queue.wait       from the job's creation to its first start, a sibling of job.process under the gateway's enqueue
//   sandbox.setup / sandbox.run / sandbox.teardown
//                    rebuilt from the runtime's own phase timings (RunResult.timings): the runtime measures them on
//                    its spawner thread, where no span can be opened, so they are placed back to back ending when
//                    runtime.run returned. Under sandbox.setup: sandbox.cgroups, .namespaces, .spawn, .mounts,
//                    .attach, from RunResult.setupSteps in the same way.
// image.resolve, image.build / image.pull, result.store and callback are opened where they happen (inSpan).
import { type Attributes, type Context, context, SpanStatusCode, trace } from '@opentelemetry/api';
import { DelayedError, type Job } from 'bullmq';
import type { QueuedJob } from '../common/job.js';
import type { NetworkRequest } from '../common/network-policy.js';
import type { RunResult } from '../common/run-spec.js';
import { ATTR, contextFromTraceparent, limitAttributes, pastSpan, tracer } from '../common/telemetry.js';

function jobAttributes(job: Job): Attributes {
  const data = job.data as Partial<QueuedJob>;
  return {
    ...(job.id ? { [ATTR.jobId]: job.id } : {}),
    ...(data.tenant ? { [ATTR.tenant]: data.tenant } : {}),
    ...(data.request?.image ? { [ATTR.image]: data.request.image } : {}),
    ...(data.request?.limits ? limitAttributes(data.request.limits) : {}),
    [ATTR.attempt]: job.attemptsMade + 1,
  };
}

/** Wraps a BullMQ processor so that each take of a job runs inside a job.process span of the job's trace. */
export function traceJobs<T>(process: (job: Job, token?: string) => Promise<T>) {
  return async function tracedProcess(job: Job, token?: string): Promise<T> {
    const parent = contextFromTraceparent((job.data as Partial<QueuedJob>).traceparent);
    const span = tracer().startSpan('job.process', { attributes: jobAttributes(job) }, parent);
    try {
      const outcome = await context.with(trace.setSpan(parent, span), () => process(job, token));
      if (typeof outcome === 'string') span.setAttribute(ATTR.outcome, outcome);
      return outcome;
    } catch (e) {
      if (e instanceof DelayedError || (e as Error).name === 'DelayedError') span.setAttribute(ATTR.outcome, 'delayed');
      else span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  };
}

/** The job's time in the queue, recorded once, when it first starts (retries wait again, but that is backoff). */
export function traceQueueWait(job: QueuedJob, startedAt: string, attempt: number | undefined): void {
  if (attempt !== 1) return;
  pastSpan('queue.wait', contextFromTraceparent(job.traceparent), Date.parse(job.createdAt), Date.parse(startedAt), {
    [ATTR.jobId]: job.id,
    [ATTR.tenant]: job.tenant,
  });
}

export function usageAttributes(result: RunResult): Attributes {
  const u = result.usage;
  return {
    [ATTR.status]: result.status,
    ...(result.exitCode !== null ? { [ATTR.exitCode]: result.exitCode } : {}),
    [ATTR.usageWallMs]: u.wallMs,
    [ATTR.usageCpuUserMs]: u.cpuUserMs,
    [ATTR.usageCpuSystemMs]: u.cpuSystemMs,
    [ATTR.usageMemoryPeakBytes]: u.memoryPeakBytes,
    ...(u.pidsPeak !== null ? { [ATTR.usagePidsPeak]: u.pidsPeak } : {}),
    [ATTR.usageOomKilled]: u.oomKilled,
    ...(u.netRxBytes !== undefined ? { [ATTR.usageNetRxBytes]: u.netRxBytes } : {}),
    ...(u.netTxBytes !== undefined ? { [ATTR.usageNetTxBytes]: u.netTxBytes } : {}),
    ...(u.netDenied !== undefined ? { [ATTR.usageNetDenied]: u.netDenied } : {}),
  };
}

/** The job's network policy, as the sandbox.network span shows it: its kind, and an allowlist's entries. */
function networkAttributes(network: NetworkRequest, result: RunResult): Attributes {
  const u = result.usage;
  return {
    [ATTR.network]: typeof network === 'string' ? network : 'allow',
    ...(typeof network === 'object' ? { [ATTR.networkAllow]: network.allow } : {}),
    [ATTR.usageNetRxBytes]: u.netRxBytes ?? 0,
    [ATTR.usageNetTxBytes]: u.netTxBytes ?? 0,
    [ATTR.usageNetDenied]: u.netDenied ?? 0,
  };
}

const SETUP_STEPS = [
  ['sandbox.cgroups', 'cgroupsMs'],
  ['sandbox.namespaces', 'namespacesMs'],
  ['sandbox.spawn', 'spawnMs'],
  ['sandbox.mounts', 'mountsMs'],
  ['sandbox.attach', 'attachMs'],
] as const;

/**
 * The setup steps the runtime timed, back to back from the start of setup, as children of sandbox.setup. A networked
 * sandbox's veth pair is made at the end of its mounts step: sandbox.network ends where that step ends.
 */
function traceSetupSteps(result: RunResult, startMs: number, setup: Context, network: NetworkRequest): void {
  if (!result.setupSteps) return;
  let at = startMs;
  for (const [name, key] of SETUP_STEPS) {
    const ms = result.setupSteps[key];
    pastSpan(name, setup, at, at + ms);
    at += ms;
    const netMs = result.setupSteps.networkMs;
    if (key === 'mountsMs' && netMs !== undefined && network !== 'none')
      pastSpan('sandbox.network', setup, at - netMs, at, networkAttributes(network, result));
  }
}

/** The sandbox's three phases as children of the active span (job.process), which also gets the usage. */
export function traceSandboxPhases(result: RunResult, endedMs: number, network: NetworkRequest = 'none'): void {
  const { setupMs, runMs, teardownMs } = result.timings;
  const parent = context.active();
  const runEnd = endedMs - teardownMs;
  const runStart = runEnd - runMs;
  const setupStart = runStart - setupMs;
  pastSpan('sandbox.setup', parent, setupStart, runStart, {}, (setup) =>
    traceSetupSteps(result, setupStart, setup, network),
  );
  pastSpan('sandbox.run', parent, runStart, runEnd, usageAttributes(result));
  pastSpan('sandbox.teardown', parent, runEnd, endedMs);
  trace.getActiveSpan()?.setAttributes(usageAttributes(result));
}
