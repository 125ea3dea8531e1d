// One queued job, start to finish, on this worker: record it running, hold its image, run it in a sandbox while
// its output streams to the job's event stream, and store the result. A job whose record already holds a final
// state is never run again (a redelivery after the result was stored); a cancelled one is not started.
import { isLidError } from '../common/errors.js';
import { FINAL_STATES, type JobRecord, type JobRequest, type QueuedJob } from '../common/job.js';
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

  /** Runs the job; `signal` aborts it (its reason says whether for a cancel or for a stopping worker). */
  async run(job: QueuedJob, signal: AbortSignal): Promise<Outcome> {
    const current = await this.jobs.get(job.id);
    if (!current || FINAL_STATES.includes(current.state)) return 'skipped';
    if (await this.jobs.cancelRequested(job.id)) {
      await this.finish(job.id, { state: 'cancelled' });
      return 'cancelled';
    }
    // Limits: the gateway held the job under its caps, but a queue-driven producer may not have; a job above this
    // worker's caps ends here, before anything of it runs.
    const { limits, problems } = fitLimits(job.request.limits, capCeilings(this.caps, 'worker'));
    if (problems.length) {
      const message = `the job asks for more than this worker allows: ${problems.map((p) => p.message).join('; ')}`;
      await this.finish(job.id, { state: 'error', error: { code: 'invalid_spec', message } });
      return 'done';
    }
    const startedAt = now();
    const running = await this.jobs.update(job.id, (r) => ({
      ...r,
      state: 'running',
      startedAt,
      queueMs: Date.parse(startedAt) - Date.parse(r.createdAt),
      attempts: r.attempts + 1,
    }));
    await this.jobs.emit(job.id, { type: 'state', state: 'running', at: startedAt });
    traceQueueWait(job, startedAt, running?.attempts);

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
      const { image } = lease;
      const defaults = jobDefaults(image.config, {
        argv: job.request.command,
        env: job.request.env,
        cwd: job.request.cwd,
      });
      const result = await this.runtime.run(
        {
          rootfs: image.layerDirs,
          ...defaults,
          files: filesOf(job.request),
          ...(job.request.stdin !== undefined ? { stdin: job.request.stdin } : {}),
          hostname: 'lid',
          limits, // as asked (and fitted under the caps): the runtime fills in its defaults
          rlimits: this.rlimits,
        },
        {
          signal,
          onOutput: (stream, chunk) => {
            const kept = outputRoom(stream, chunk);
            if (kept.length) emit({ type: 'output', stream, ...encodeChunk(kept) });
          },
        },
      );
      traceSandboxPhases(result, nowMs());
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
