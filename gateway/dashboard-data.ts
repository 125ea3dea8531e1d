// What the dashboard's JSON endpoints read, for every tenant at once: the queue's counts from BullMQ, the workers
// (keys.workers heartbeats, detailed by each worker's keys.worker(id) record), the running and recent jobs the
// workers list (common/activity.ts), and a job's timeline -- its trace spans when the job was traced, otherwise
// phases derived from the record's own timestamps and timings, so a timeline is always there to draw.
import { readWorkerInfo, type WorkerInfo } from '../common/activity.js';
import type { JobRecord } from '../common/job.js';
import { keys } from '../common/keys.js';
import { readTrace } from '../common/trace-store.js';
import type { Services } from './deps.js';

const WORKER_FRESH_MS = 15_000;
const RECENT_SHOWN = 50;
const RUNNING_SHOWN = 100;

export interface WorkerView extends Partial<WorkerInfo> {
  id: string;
  lastHeartbeat: string;
  alive: boolean;
}

/** A job as the dashboard lists it: the record without output (which may be large and is nobody's business here). */
export type JobSummary = Pick<
  JobRecord,
  'id' | 'tenant' | 'image' | 'state' | 'createdAt' | 'startedAt' | 'finishedAt' | 'queueMs' | 'attempts' | 'traceId'
> & { status: string | null; wallMs: number | null };

export interface Overview {
  queue: { name: string; counts: Record<string, number> };
  workers: WorkerView[];
  running: JobSummary[];
  recent: JobSummary[];
  at: string;
}

export interface TimelineSpan {
  name: string;
  spanId: string;
  parentSpanId: string | null;
  start: string;
  durationMs: number;
  attributes: Record<string, unknown>;
}

export interface Timeline {
  jobId: string;
  traceId: string | null;
  /** trace: recorded spans; record: phases rebuilt from the job record (the job was not traced). */
  source: 'trace' | 'record';
  spans: TimelineSpan[];
}

function summary(r: JobRecord): JobSummary {
  const wall = r.result?.usage.wallMs;
  return {
    id: r.id,
    tenant: r.tenant,
    image: r.image,
    state: r.state,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    queueMs: r.queueMs,
    attempts: r.attempts,
    traceId: r.traceId,
    status: r.result?.status ?? r.error?.code ?? null,
    wallMs: typeof wall === 'number' ? wall : null,
  };
}

async function records(s: Services, ids: string[]): Promise<JobSummary[]> {
  const found = await Promise.all(ids.map((id) => s.jobs.get(id)));
  return found.filter((r): r is JobRecord => r !== null).map(summary);
}

export async function overview(s: Services): Promise<Overview> {
  const [counts, beats, runningIds, recentIds] = await Promise.all([
    s.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'),
    s.redis.zrevrange(keys.workers, 0, 99, 'WITHSCORES'),
    s.redis.srandmember(keys.running, RUNNING_SHOWN),
    s.redis.lrange(keys.recent, 0, RECENT_SHOWN - 1),
  ]);
  const ids = beats.filter((_, i) => i % 2 === 0);
  const infos = await readWorkerInfo(s.redis, ids);
  const workers = ids.map((id, i) => {
    const at = Number(beats[i * 2 + 1]);
    return {
      ...(infos[i] ?? {}),
      id,
      lastHeartbeat: new Date(at).toISOString(),
      alive: Date.now() - at < WORKER_FRESH_MS,
    };
  });
  const running = (await records(s, runningIds)).sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''));
  return {
    queue: { name: s.queue.name, counts },
    workers,
    running,
    recent: await records(s, recentIds),
    at: new Date().toISOString(),
  };
}

/** Phases from the record: queued (created -> started), then the run's own set-up, run and teardown. */
function phasesOf(r: JobRecord): TimelineSpan[] {
  const created = Date.parse(r.createdAt);
  const end = r.finishedAt ? Date.parse(r.finishedAt) : Date.now();
  const started = r.startedAt ? Date.parse(r.startedAt) : null;
  const span = (name: string, spanId: string, parent: string | null, start: number, ms: number) => ({
    name,
    spanId,
    parentSpanId: parent,
    start: new Date(start).toISOString(),
    durationMs: Math.max(0, ms),
    attributes: { 'lid.job.id': r.id, 'lid.state': r.state },
  });
  const spans = [span('job', 'job', null, created, end - created)];
  if (started === null) return spans;
  spans.push(span('queued', 'queued', 'job', created, started - created));
  spans.push(span('running', 'running', 'job', started, end - started));
  const usage = r.result?.usage ?? {};
  let at = started;
  for (const phase of ['setup', 'run', 'teardown']) {
    const ms = usage[`${phase}Ms`];
    if (typeof ms !== 'number') continue;
    spans.push(span(phase, phase, 'running', at, ms));
    at += ms;
  }
  return spans;
}

/** The job's timeline, any tenant's (the dashboard is an operator's view), or null when there is no such job. */
export async function timeline(s: Services, jobId: string): Promise<Timeline | null> {
  const record = await s.jobs.get(jobId);
  if (!record) return null;
  const traced = record.traceId ? await readTrace(s.redis, record.traceId, record.id) : [];
  if (traced.length) {
    return { jobId, traceId: record.traceId, source: 'trace', spans: traced };
  }
  return { jobId, traceId: record.traceId, source: 'record', spans: phasesOf(record) };
}
