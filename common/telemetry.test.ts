// The tracing helpers without the SDK (what every unit test and an untraced process sees), the export switch, and
// the Redis span recorder behind GET /v1/jobs/:id/trace, fed by a real tracer provider against a real Redis.
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { loadConfig } from './config.js';
import { keys } from './keys.js';
import { connectRedis } from './redis.js';
import { ATTR, contextFromTraceparent, otlpTracesUrl, spanTraceId, traceIdOf, traceparentOf } from './telemetry.js';
import { readTrace, TraceRecorder } from './trace-store.js';

const CLIENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('telemetry helpers', () => {
  it('keeps every attribute name under lid.* (or the OpenTelemetry http.* conventions)', () => {
    for (const name of Object.values(ATTR)) expect(name).toMatch(/^(lid|http)\.[a-z_.]+$/);
  });

  it('passes a client traceparent on even with no SDK registered, and drops a malformed one', () => {
    const span = trace.getTracer('t').startSpan('x', {}, contextFromTraceparent(CLIENT));
    expect(traceparentOf(span)).toBe(CLIENT);
    expect(spanTraceId(span)).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(traceIdOf(CLIENT)).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(contextFromTraceparent('00-nothex-01')).toBe(ROOT_CONTEXT);
    expect(spanTraceId(trace.getTracer('t').startSpan('y'))).toBeNull();
  });

  it('exports only when an OTLP endpoint is set and OTEL_TRACES_EXPORTER is not none', () => {
    expect(otlpTracesUrl(loadConfig({}))).toBeNull();
    expect(otlpTracesUrl(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }))).toBe(
      'http://c:4318/v1/traces',
    );
    expect(
      otlpTracesUrl(
        loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://d/t' }),
      ),
    ).toBe('http://d/t');
    expect(
      otlpTracesUrl(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' })),
    ).toBeNull();
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'c:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});

describe('TraceRecorder', () => {
  let server: TestRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = connectRedis(server.url, 'test');
  });
  afterAll(async () => {
    await redis.quit();
    await server.stop();
  });

  it("stores a job's spans, children inheriting the job id, and nothing of other traces", async () => {
    const recorder = new TraceRecorder(redis, 60);
    const tracer = new BasicTracerProvider({ spanProcessors: [recorder] }).getTracer('t');
    const root = tracer.startSpan('job.process', { attributes: { [ATTR.jobId]: 'j1' } });
    const child = tracer.startSpan('image.pull', {}, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    root.end();
    tracer.startSpan('GET /healthz').end(); // no job: not recorded
    await recorder.forceFlush();

    const traceId = root.spanContext().traceId;
    const spans = await readTrace(redis, traceId, 'j1');
    expect(spans.map((s) => [s.name, s.parentSpanId])).toEqual([
      ['job.process', null],
      ['image.pull', root.spanContext().spanId],
    ]);
    expect(spans[1]!.attributes[ATTR.jobId]).toBe('j1');
    expect(await redis.ttl(keys.trace(traceId))).toBeGreaterThan(0);
    expect(await redis.keys(keys.trace('*'))).toEqual([keys.trace(traceId)]);
  });
});
