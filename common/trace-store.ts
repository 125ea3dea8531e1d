// A job's timeline without a tracing backend: every finished span that belongs to a job is appended to the list
// keys.trace(traceId) (common/keys.ts: JSON StoredSpan, expiring LID_RESULT_TTL after its last span)
// by TraceRecorder, a span processor that both the gateway and the workers register, and read back by readTrace for
// GET /v1/jobs/:id/trace. A span belongs to a job when it carries lid.job.id; children started in the same process
// inherit it from their parent, so code deep in the worker (image pulls) need not know which job it serves.
import { type Attributes, trace } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { Context } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import { keys } from './keys.js';

const JOB_ID = 'lid.job.id'; // ATTR.jobId; repeated here so that telemetry.ts may import this module
const FLUSH_MS = 50;

export interface StoredSpan {
  name: string;
  spanId: string;
  parentSpanId: string | null;
  /** When the span started: ISO for people, epoch milliseconds (to the microsecond) for ordering. */
  start: string;
  startMs: number;
  durationMs: number;
  attributes: Attributes;
  status: 'unset' | 'ok' | 'error';
  statusMessage?: string;
}

const toMs = ([s, ns]: [number, number]) => s * 1000 + ns / 1e6;
const STATUS = ['unset', 'ok', 'error'] as const;

function stored(span: ReadableSpan): StoredSpan {
  return {
    name: span.name,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    start: new Date(toMs(span.startTime)).toISOString(),
    startMs: Math.round(toMs(span.startTime) * 1000) / 1000,
    durationMs: Math.round(toMs(span.duration) * 1000) / 1000,
    attributes: span.attributes,
    status: STATUS[span.status.code] ?? 'unset',
    ...(span.status.message ? { statusMessage: span.status.message } : {}),
  };
}

/**
 * Buffers ended job spans for a moment and writes them in one round trip. Fire and forget: a Redis problem loses
 * timeline entries, never delays or fails a job (a job makes about ten spans, so the cost is one small write).
 */
export class TraceRecorder implements SpanProcessor {
  private pending = new Map<string, string[]>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
  ) {}

  onStart(span: Span, parentContext: Context): void {
    if (span.attributes[JOB_ID] !== undefined) return;
    const parent = trace.getSpan(parentContext) as Partial<ReadableSpan> | undefined;
    const jobId = parent?.attributes?.[JOB_ID];
    if (jobId !== undefined) span.setAttribute(JOB_ID, jobId);
  }

  onEnd(span: ReadableSpan): void {
    if (span.attributes[JOB_ID] === undefined) return;
    const traceId = span.spanContext().traceId;
    const list = this.pending.get(traceId) ?? [];
    list.push(JSON.stringify(stored(span)));
    this.pending.set(traceId, list);
    // unref: a pending write never keeps a process alive; shutdown() flushes it on the way out.
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS).unref();
  }

  forceFlush(): Promise<void> {
    return this.flush();
  }

  shutdown(): Promise<void> {
    return this.flush();
  }

  private flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return this.writing;
    const tx = this.redis.multi();
    for (const [traceId, spans] of batch)
      tx.rpush(keys.trace(traceId), ...spans).expire(keys.trace(traceId), this.ttlSeconds);
    this.writing = this.writing.then(() =>
      tx.exec().then(
        () => {},
        () => {},
      ),
    );
    return this.writing;
  }
}

/** The spans of `traceId` that belong to job `jobId` (a batch's jobs share a trace), sorted by start. */
export async function readTrace(redis: Redis, traceId: string, jobId: string): Promise<StoredSpan[]> {
  const raw = await redis.lrange(keys.trace(traceId), 0, -1);
  return raw
    .map((r) => JSON.parse(r) as StoredSpan)
    .filter((s) => s.attributes[JOB_ID] === jobId)
    .sort((a, b) => a.startMs - b.startMs || b.durationMs - a.durationMs); // a parent before its child
}
