// A job's events as Server-Sent Events: `state` {state, at}, `output` {stream, data, encoding} and, last, `final`
// with the finished record; then the stream closes. It replays the job's stream from the start (or after the
// client's Last-Event-ID, since each SSE id is the stream entry id) and then follows it live. A comment line keeps
// idle connections open through proxies; the stream ends when the client goes away. The payloads are the contract
// of common/http-api.ts (JobStreamPayloads), which LidClient reads.
import type { SSEStreamingApi } from 'hono/streaming';
import type { JobStreamPayloads } from '../common/http-api.js';
import type { JobRecord } from '../common/job.js';
import type { JobEvent } from '../common/job-store.js';
import { envelope } from './api-error.js';
import type { Services } from './deps.js';
import { followEvents, isFinal } from './job-events.js';

const PAYLOAD: { [T in JobEvent['type']]: (event: Extract<JobEvent, { type: T }>) => JobStreamPayloads[T] } = {
  state: (event) => ({ state: event.state, at: event.at }),
  output: (event) => ({ stream: event.stream, data: event.data, encoding: event.encoding }),
  final: (event) => event.record,
};
const payload = (event: JobEvent) => (PAYLOAD[event.type] as (event: JobEvent) => unknown)(event);

export async function sendEvents(
  s: Services,
  stream: SSEStreamingApi,
  record: JobRecord,
  from: string,
  requestSignal: AbortSignal,
): Promise<void> {
  const gone = new AbortController();
  stream.onAbort(() => gone.abort());
  requestSignal.addEventListener('abort', () => gone.abort(), { once: true });
  // A finished job's stream already holds everything: when it runs dry, stop at once rather than after 15 s idle.
  const idleMs = isFinal(record) ? 100 : 15_000;
  let finalSent = false;
  try {
    for await (const entry of followEvents(s, record.id, { from, idleMs, signal: gone.signal })) {
      if (entry) {
        await stream.writeSSE({ id: entry.id, event: entry.event.type, data: JSON.stringify(payload(entry.event)) });
        finalSent = entry.event.type === 'final';
        continue;
      }
      // Idle: if the job ended without a final event in reach (its stream expired), stop and send the record.
      const current = await s.jobs.get(record.id);
      if (!current || isFinal(current)) break;
      await stream.write(': keep-alive\n\n');
    }
    if (!finalSent && !gone.signal.aborted) {
      const current = await s.jobs.get(record.id);
      if (current && isFinal(current)) await stream.writeSSE({ event: 'final', data: JSON.stringify(current) });
    }
  } catch (e) {
    s.logger.error({ err: e, jobId: record.id, tenant: record.tenant, traceId: record.traceId }, 'event stream failed');
    const error: JobStreamPayloads['error'] = envelope(
      'internal',
      'the event stream broke off: reconnect with Last-Event-ID to resume',
    );
    await stream.writeSSE({ event: 'error', data: JSON.stringify(error) });
  }
}
