// Tracing for the gateway and the workers, written against @opentelemetry/api so that code which makes spans works
// (as no-ops) in processes that never call initTelemetry, such as unit tests. Owns: the attribute names (ATTR, all
// under `lid.*`), the W3C traceparent carried from the client through BullMQ to the worker, span helpers, and
// initTelemetry, which registers the SDK with two span processors: the Redis recorder behind GET /v1/jobs/:id/trace
// (always on) and, only when an OTLP endpoint is configured, a batching OTLP/HTTP (JSON) exporter.
import {
  type Attributes,
  type Context,
  type HrTime,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Redis } from 'ioredis';
import type { LidConfig } from './config.js';
import type { JobLimits } from './job.js';
import { TraceRecorder } from './trace-store.js';

/** Every span attribute Lid sets, in one place so that dashboards and the trace API agree on the names. */
export const ATTR = {
  jobId: 'lid.job.id',
  tenant: 'lid.tenant',
  image: 'lid.image',
  status: 'lid.status',
  outcome: 'lid.outcome',
  attempt: 'lid.attempt',
  batchSize: 'lid.batch.size',
  queueMs: 'lid.queue_ms',
  limitTimeoutMs: 'lid.limits.timeout_ms',
  limitMemoryBytes: 'lid.limits.memory_bytes',
  limitCpus: 'lid.limits.cpus',
  limitPids: 'lid.limits.pids',
  limitOutputBytes: 'lid.limits.output_bytes',
  limitDiskBytes: 'lid.limits.disk_bytes',
  usageWallMs: 'lid.usage.wall_ms',
  usageCpuUserMs: 'lid.usage.cpu_user_ms',
  usageCpuSystemMs: 'lid.usage.cpu_system_ms',
  usageMemoryPeakBytes: 'lid.usage.memory_peak_bytes',
  usagePidsPeak: 'lid.usage.pids_peak',
  usageOomKilled: 'lid.usage.oom_killed',
  usageNetRxBytes: 'lid.usage.net_rx_bytes',
  usageNetTxBytes: 'lid.usage.net_tx_bytes',
  usageNetDenied: 'lid.usage.net_denied',
  network: 'lid.network',
  networkAllow: 'lid.network.allow',
  exitCode: 'lid.exit_code',
  callbackHost: 'lid.callback.host',
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
} as const;

/** The job's limits as span attributes (only those it set; the rest are the documented defaults). */
export function limitAttributes(limits: JobLimits): Attributes {
  const a: Attributes = {};
  if (limits.timeoutMs !== undefined) a[ATTR.limitTimeoutMs] = limits.timeoutMs;
  if (limits.memoryBytes !== undefined) a[ATTR.limitMemoryBytes] = limits.memoryBytes;
  if (limits.cpus !== undefined) a[ATTR.limitCpus] = limits.cpus;
  if (limits.pids !== undefined) a[ATTR.limitPids] = limits.pids;
  if (limits.outputBytes !== undefined) a[ATTR.limitOutputBytes] = limits.outputBytes;
  if (limits.diskBytes !== undefined) a[ATTR.limitDiskBytes] = limits.diskBytes;
  return a;
}

// A private instance rather than the global propagator: the traceparent must travel even where no SDK is registered.
const propagator = new W3CTraceContextPropagator();

export function tracer(): Tracer {
  return trace.getTracer('lid');
}

/** The context a W3C traceparent header continues (the root context when it is absent or malformed). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, { get: (c, k) => c[k], keys: (c) => Object.keys(c) });
}

/** The traceparent naming `span` as the parent, for the queue; undefined when the span carries no valid context. */
export function traceparentOf(span: Span): string | undefined {
  if (!isSpanContextValid(span.spanContext())) return undefined;
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => (c[k] = v) });
  return carrier.traceparent;
}

/** The trace id of a traceparent, for log lines written before any span exists. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent?.split('-')[1];
}

/** The span's trace id, or null for a non-recording span without a parent (no SDK and no client trace). */
export function spanTraceId(span: Span | undefined): string | null {
  const sc = span?.spanContext();
  return sc && isSpanContextValid(sc) ? sc.traceId : null;
}

/** Runs fn in a child span of the active one, recording an exception as the span's error status. */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * A span with times measured elsewhere (the queue wait, the runtime's own phase timings), child of `parent`;
 * `children` may add spans under it before it ends.
 */
export function pastSpan(
  name: string,
  parent: Context,
  startMs: number,
  endMs: number,
  attributes: Attributes = {},
  children?: (self: Context) => void,
): void {
  const span = tracer().startSpan(name, { startTime: hrTime(startMs), attributes }, parent);
  children?.(trace.setSpan(parent, span));
  span.end(hrTime(Math.max(startMs, endMs)));
}

/** Epoch milliseconds (fractional) as HrTime, keeping the sub-millisecond part a Date would drop. */
export function hrTime(epochMs: number): HrTime {
  const seconds = Math.floor(epochMs / 1000);
  return [seconds, Math.round((epochMs - seconds * 1000) * 1e6)];
}

/** Wall-clock milliseconds with sub-millisecond resolution, on the same clock as the SDK's span times. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface Telemetry {
  /** Exports what is still buffered and stops; idempotent. */
  shutdown(): Promise<void>;
}

/** Where traces are exported, from the standard variables; null when export is off. */
export function otlpTracesUrl(config: LidConfig): string | null {
  if (config.tracesExporter === 'none') return null;
  if (config.otlpTracesEndpoint) return config.otlpTracesEndpoint;
  if (config.otlpEndpoint) return `${config.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
  return null;
}

/**
 * Registers the tracing SDK for this process (call once, at start, before spans are made). `redis` receives each
 * job's spans for the trace API; its owner closes it after shutdown().
 */
export function initTelemetry(config: LidConfig, serviceName: string, redis: Redis): Telemetry {
  const processors: SpanProcessor[] = [new TraceRecorder(redis, config.resultTtlSeconds)];
  const url = otlpTracesUrl(config);
  if (url) {
    const exporter = new OTLPTraceExporter({ url });
    processors.push(new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.bspScheduleDelayMs }));
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName ?? serviceName }),
    spanProcessors: processors,
  });
  // Also installs the AsyncLocalStorage context manager, so the active span follows awaits.
  provider.register({ propagator });
  let stopping: Promise<void> | undefined;
  return {
    shutdown: () => (stopping ??= provider.shutdown().catch(() => {})),
  };
}
