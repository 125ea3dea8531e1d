// A stand-in for Lid's worker in gateway and client tests: a tiny BullMQ Worker on the test queue that does what
// Lid's worker does when a job ends (the final record through JobStore.update, then the `state` and `final`
// events). It is scaffolding for testing the gateway and its clients, not the worker; the real one has its own tests.
import { type Job, type Queue, Worker } from 'bullmq';
import type { JobRecord, QueuedJob } from '../common/job.js';
import type { JobStore } from '../common/job-store.js';
import { QUEUES } from '../common/keys.js';

const now = () => new Date().toISOString();

/** Runs each job of `queue` by calling `run`, holding it while `run` is pending. Close it after the test. */
export function fakeWorker(redisUrl: string, queue: Queue, run: (job: Job<QueuedJob>) => Promise<unknown>): Worker {
  const { hostname, port, username, password } = new URL(redisUrl);
  // Connection options rather than a connection: the Worker then owns its connections and closes them.
  return new Worker<QueuedJob>(queue.name, run, {
    connection: { host: hostname, port: Number(port), username, password },
    prefix: QUEUES.prefix,
  });
}

/** What Lid's worker does when a job ends: the final record, then the `final` event. */
export async function finish(jobs: JobStore, id: string, stdout: string): Promise<JobRecord> {
  const record = await jobs.update(id, (r) => ({
    ...r,
    state: 'completed',
    startedAt: r.startedAt ?? now(),
    finishedAt: now(),
    result: {
      status: 'ok',
      exitCode: 0,
      signal: null,
      stdout,
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      usage: {},
    },
  }));
  await jobs.emit(id, { type: 'state', state: 'completed', at: now() });
  await jobs.emit(id, { type: 'final', record: record! });
  return record!;
}
