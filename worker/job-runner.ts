// One claimed job, start to finish, on this worker: hold its image, run it in a sandbox while its output streams to
// the job's event stream, and store the result. Everything before (the record already final, a cancel asked for,
// the tenant's slot, the record set running) is the claim's (worker/claim.ts); the caps check that decides whether
// the claim refuses the job is here (fitToCaps), beside the limits it gives the sandbox.
import { isLidError } from '../common/errors.js';
import { FINAL_STATES, type JobLimits, type JobRecord, type JobRequest, type QueuedJob } from '../common/job.js';
import type { JobEvent, JobStore } from '../common/job-store.js';
import { capCeilings, fitLimits, type LimitValues, runLimits } from '../common/limits.js';
import { encodeChunk } from '../common/output-encoding.js';
import { retryWhileRedisFull } from '../common/redis.js';
import { encodeRunResult } from '../common/run-result-json.js';
import type { RunSpecInput } from '../common/run-spec.js';
import { ATTR, inSpan, nowMs } from '../common/telemetry.js';
import type { HeldImage, ImageAcquirer } from '../images/acquire.js';
import { jobDefaults } from '../images/image-defaults.js';
import type { SandboxRuntime } from '../runtime/index.js';
import type { Refusal } from './claim.js';
import { traceQueueWait, traceSandboxPhases } from './job-trace.js';

export type Outcome = 'done' | 'skipped' | 'cancelled';

/** Why a run was aborted: the tenant asked (cancel), or this worker is stopping (requeue elsewhere). */
export class WorkerStopping extends Error {
  override readonly name = 'WorkerStopping';
}

const now = () => new Date().toISOString();

function filesOf(request: JobRequest): RunSpecInput['files'] {
  return request.files.map((f) => ({
    path: f.path,
    content: f.encoding === 'base64' ? Buffer.from(f.content, 'base64') : f.content,
    ...(f.mode !== undefined ? { mode: f.mode } : {}),
  }));
}

/**
 * Streamed output stops at the job's outputBytes per stream, as the runtime's kept output does: the events stream
 * in Redis then holds at most that much per stream (base64 or JSON-escaped text, see encodeChunk), however fast the
 * job writes. The runtime already stops there; this keeps the bound here, next to the Redis writes it protects.
 */
function boundedOutput(limit: number): (stream: 'stdout' | 'stderr', chunk: Uint8Array) => Uint8Array {
  const sent = { stdout: 0, stderr: 0 };
  return (stream, chunk) => {
    const kept = chunk.subarray(0, Math.max(0, limit - sent[stream]));
    sent[stream] += kept.length;
    return kept;
  };
}

/**
 * The sandbox a job runs in: the image's layers and defaults under the request's command, environment and working
 * directory, its files and stdin, the limits as asked (fitted under the caps: the runtime fills in its defaults),
 * this worker's process limits, and the network the request asked for (held under its tenant's ceiling at submit).
 */
export function sandboxSpec(
  request: JobRequest,
  image: HeldImage['image'],
  limits: JobLimits,
  rlimits: { nofile: number; stack: number },
): RunSpecInput {
  const defaults = jobDefaults(image.config, { argv: request.command, env: request.env, cwd: request.cwd });
  return {
    rootfs: image.layerDirs,
    ...defaults,
    files: filesOf(request),
    ...(request.stdin !== undefined ? { stdin: request.stdin } : {}),
    hostname: 'lid',
    limits,
    rlimits,
    network: request.network,
  };
}

export class JobRunner {
  constructor(
    private readonly jobs: JobStore,
    private readonly images: ImageAcquirer,
    private readonly runtime: SandboxRuntime,
    /** This worker's caps (LID_CAP_*): a queued job above them is refused here, whoever queued it. */
    private readonly caps: LimitValues,
    /** Process limits of every job on this worker (LID_RLIMIT_NOFILE, LID_RLIMIT_STACK). */
    private readonly rlimits: { nofile: number; stack: number },
  ) {}

  /** Stores the final record; on a full Redis it waits for room rather than fail (and later rerun) the job. */
  private async finish(id: string, change: Partial<JobRecord>): Promise<JobRecord | null> {
    const record = await retryWhileRedisFull(() =>
      this.jobs.update(id, (r) => (FINAL_STATES.includes(r.state) ? null : { ...r, ...change, finishedAt: now() })),
    );
    if (record && FINAL_STATES.includes(record.state)) {
      await retryWhileRedisFull(() => this.jobs.emit(id, { type: 'final', record }));
    }
    return record;
  }

  /**
   * Holds the job under this worker's caps (LID_CAP_*): the gateway held it under its server caps, but a queue-driven
   * producer does not know them. Returns the limits to run with, or why the job must not run at all (the claim then
   * ends it `error` before anything of it runs).
   */
  fitToCaps(job: QueuedJob): { limits: JobLimits; refusal: null } | { limits: null; refusal: Refusal } {
    const { limits, problems } = fitLimits(job.request.limits, capCeilings(this.caps, 'worker'));
    if (!problems.length) return { limits, refusal: null };
    const message = `the job asks for more than this worker allows: ${problems.map((p) => p.message).join('; ')}`;
    return { limits: null, refusal: { code: 'invalid_spec', message } };
  }

  /**
   * Runs a claimed job (worker/claim.ts: its record is `running` now) with the limits fitToCaps gave; `signal`
   * aborts it (its reason says whether for a cancel or for a stopping worker).
   */
  async run(job: QueuedJob, running: JobRecord, limits: JobLimits, signal: AbortSignal): Promise<Outcome> {
    traceQueueWait(job, running.startedAt!, running.attempts);

    let lease: HeldImage | null = null;
    // Output events are appended in order: each waits for the one before it.
    let emitted: Promise<void> = Promise.resolve();
    const emit = (event: JobEvent) => {
      emitted = emitted.then(() => this.jobs.emit(job.id, event)).catch(() => {});
    };
    const outputRoom = boundedOutput(runLimits(limits).outputBytes);
    try {
      lease = await inSpan('image.resolve', { [ATTR.image]: job.request.image }, () =>
        this.images.acquire(job.request.image),
      );
      const result = await this.runtime.run(sandboxSpec(job.request, lease.image, limits, this.rlimits), {
        signal,
        onOutput: (stream, chunk) => {
          const kept = outputRoom(stream, chunk);
          if (kept.length) emit({ type: 'output', stream, ...encodeChunk(kept) });
        },
      });
      traceSandboxPhases(result, nowMs(), job.request.network);
      await emitted;
      await inSpan('result.store', {}, () =>
        this.finish(job.id, { state: 'completed', result: encodeRunResult(result) }),
      );
      return 'done';
    } catch (e) {
      await emitted;
      if (signal.aborted && signal.reason instanceof WorkerStopping) {
        // Back to queued for another worker; the attempt stays counted in the record.
        await this.jobs.update(job.id, (r) =>
          r.state === 'running' ? { ...r, state: 'queued', startedAt: null } : null,
        );
        await this.jobs.emit(job.id, { type: 'state', state: 'queued', at: now() });
        throw e;
      }
      if (signal.aborted) {
        await this.finish(job.id, { state: 'cancelled' });
        return 'cancelled';
      }
      if (isLidError(e) && e.code !== 'internal' && e.code !== 'setup_failed') {
        // The job cannot run as asked (unknown image, command not found, bad file): retrying would not help.
        await this.finish(job.id, { state: 'error', error: { code: e.code, message: e.message } });
        return 'done';
      }
      throw e; // a host problem: BullMQ retries it, on this or another worker
    } finally {
      lease?.release();
    }
  }

  /** After the last attempt failed on host problems: say so in the record. */
  async giveUp(id: string, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    await this.finish(id, {
      state: 'error',
      error: { code: isLidError(error) ? error.code : 'internal', message: `Lid could not run the job: ${message}` },
    });
  }
}
