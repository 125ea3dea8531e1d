// The typed client for Lid's HTTP API, for TypeScript users and for Lid's own `lid run` and load test: submit a job
// (optionally waiting for it), read it, wait for its end, follow its events, cancel it, submit and read batches.
// Its types are the API's own schemas (common/job.ts, common/http-api.ts), the ones the gateway declares its routes
// with; OPERATIONS below is every request it makes, and test/http-client.test.ts checks each against /openapi.json.
//
//   const lid = new LidClient({ url: 'http://127.0.0.1:8080', apiKey: 'lid_...' });
//   const job = await lid.submit({ image: 'python', command: ['python3', '-c', 'print(42)'] });
//   for await (const event of lid.events(job.id))
//     if (event.type === 'output') process.stdout.write(Buffer.from(event.data, event.encoding));
//   const record = await lid.wait(job.id);   // record.result.stdout === '42\n'
//
// Errors: a refusal becomes a LidApiError with the envelope's code, message and details. A 429 `rate_limited` (the
// tenant's request rate) is retried after its Retry-After, up to rateLimitRetries times and only when the wait is
// at most maxRetryAfterMs: the refused request did nothing, and the bucket refills in about a second. A 429
// `queue_full` or a 503 is not retried: whether to wait for one's own backlog or for an operator is the caller's
// call, and retryAfterMs on the error says what the gateway suggested. An event stream that breaks off before the
// job's end is reopened with Last-Event-ID, so no event is lost or repeated.
import type { z } from 'zod';
import {
  type BatchCreated,
  BatchCreatedSchema,
  type BatchRequestInput,
  BatchRequestSchema,
  type BatchView,
  BatchViewSchema,
  JobRecordSchema,
  type JobStreamPayloads,
} from './http-api.js';
import { FINAL_STATES, type JobRecord, type JobRequestInput, JobRequestSchema } from './job.js';
import { type LidJobEvent, readEvents, toJobEvent } from './job-event-stream.js';
import { LidApiError } from './lid-api-error.js';

export type { LidJobEvent } from './job-event-stream.js';

/**
 * Every request the client makes: method and path, the schema of the body it sends, the query parameters and
 * headers it may send, and the schema of each success it reads. The methods below take their return types from
 * these schemas, the same objects the gateway's routes are declared with.
 */
export const OPERATIONS = {
  submit: {
    method: 'POST',
    path: '/v1/jobs',
    body: JobRequestSchema,
    query: ['wait'],
    headers: ['Idempotency-Key', 'traceparent'],
    responses: { 200: JobRecordSchema, 202: JobRecordSchema },
  },
  get: { method: 'GET', path: '/v1/jobs/{id}', responses: { 200: JobRecordSchema } },
  cancel: { method: 'DELETE', path: '/v1/jobs/{id}', responses: { 200: JobRecordSchema, 202: JobRecordSchema } },
  events: { method: 'GET', path: '/v1/jobs/{id}/events', headers: ['Last-Event-ID'], responses: { 200: null } },
  createBatch: {
    method: 'POST',
    path: '/v1/batches',
    body: BatchRequestSchema,
    headers: ['Idempotency-Key', 'traceparent'],
    responses: { 202: BatchCreatedSchema },
  },
  getBatch: {
    method: 'GET',
    path: '/v1/batches/{id}',
    query: ['cursor', 'limit'],
    responses: { 200: BatchViewSchema },
  },
} as const;
type Operation = (typeof OPERATIONS)[keyof typeof OPERATIONS];
type JsonOperation = Extract<Operation, { responses: Record<number, z.ZodType> }>;
/** What a JSON operation answers: the output of its response schemas. */
type Answer<O extends JsonOperation> = z.output<O['responses'][keyof O['responses']]>;

export interface LidClientOptions {
  /** The gateway, e.g. http://127.0.0.1:8080 (LID_URL for `lid run`). */
  url: string;
  /** A tenant's API key, lid_... */
  apiKey: string;
  /** Retries of a request refused as rate_limited (default 3); 0 surfaces every 429 at once. */
  rateLimitRetries?: number;
  /** The longest Retry-After worth waiting for (default 10 s); a longer one surfaces as the error. */
  maxRetryAfterMs?: number;
  /** Reopenings of an event stream in a row without an event in between (default 5), each after a pause. */
  streamReconnects?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

const RECONNECT_PAUSE_MS = 250;

export const isFinalRecord = (record: JobRecord): boolean => FINAL_STATES.includes(record.state);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110); undefined when absent or unreadable. */
function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export class LidClient {
  private readonly url: string;
  private readonly options: Required<Omit<LidClientOptions, 'url'>>;

  constructor({ url, ...options }: LidClientOptions) {
    this.url = url.replace(/\/+$/, '');
    this.options = { rateLimitRetries: 3, maxRetryAfterMs: 10_000, streamReconnects: 5, ...options };
  }

  /** Queues a job: its record, queued; with `wait` (seconds, up to 60) the final record if it ends by then. */
  async submit(
    request: JobRequestInput,
    opts: RequestOptions & { wait?: number; idempotencyKey?: string; traceparent?: string } = {},
  ): Promise<JobRecord> {
    const query = opts.wait === undefined ? '' : `?wait=${opts.wait}`;
    const headers = submitHeaders(opts);
    return this.json(OPERATIONS.submit, { query, headers, body: request, signal: opts.signal });
  }

  async get(id: string, opts: RequestOptions = {}): Promise<JobRecord> {
    return this.json(OPERATIONS.get, { id, signal: opts.signal });
  }

  /** Cancels a job: the record, cancelled if it was still queued, else still running until its worker kills it. */
  async cancel(id: string, opts: RequestOptions = {}): Promise<JobRecord> {
    return this.json(OPERATIONS.cancel, { id, signal: opts.signal });
  }

  /** The job's final record; with `timeoutMs`, its record as it is then if it has not ended. */
  async wait(id: string, opts: RequestOptions & { timeoutMs?: number } = {}): Promise<JobRecord> {
    const deadline = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const signals = [opts.signal, deadline].filter((s): s is AbortSignal => s !== undefined);
    try {
      for await (const event of this.events(id, { signal: AbortSignal.any(signals) })) {
        if (event.type === 'final') return event.record;
      }
    } catch (e) {
      if (!deadline?.aborted || opts.signal?.aborted) throw e;
    }
    return this.get(id, { signal: opts.signal });
  }

  /**
   * The job's events as they happen, from its first (or after `lastEventId`) to `final`. A stream that breaks off
   * is reopened after the last event received; one that cannot be reopened throws a LidApiError.
   */
  async *events(id: string, opts: RequestOptions & { lastEventId?: string } = {}): AsyncGenerator<LidJobEvent> {
    let lastEventId = opts.lastEventId;
    let failures = 0;
    for (;;) {
      let why: string | undefined;
      try {
        const res = await this.send(OPERATIONS.events, {
          id,
          headers: { accept: 'text/event-stream', ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) },
          signal: opts.signal,
        });
        for await (const message of readEvents(res)) {
          if (message.event === 'error') {
            why = (JSON.parse(message.data) as JobStreamPayloads['error']).error.message;
            break;
          }
          const event = toJobEvent(message.event, message.id, message.data);
          if (!event) continue;
          if (message.id) lastEventId = message.id;
          failures = 0;
          yield event;
          if (event.type === 'final') return;
        }
        why ??= 'the gateway closed the stream before the job ended';
      } catch (e) {
        // Refusals (404, 401, ...) are final; only a connection that failed or broke is worth reopening.
        if (opts.signal?.aborted || !(e instanceof LidApiError && e.status === null)) throw e;
        why = e.message;
      }
      if (++failures > this.options.streamReconnects) {
        throw new LidApiError('unavailable', `the event stream of job ${id} broke off: ${why}`, null, null);
      }
      await sleep(RECONNECT_PAUSE_MS * 2 ** (failures - 1), opts.signal);
    }
  }

  /** Queues up to 1000 jobs at once, all checked first: one bad spec refuses the whole batch. */
  async createBatch(
    request: BatchRequestInput,
    opts: RequestOptions & { idempotencyKey?: string; traceparent?: string } = {},
  ): Promise<BatchCreated> {
    const headers = submitHeaders(opts);
    return this.json(OPERATIONS.createBatch, { headers, body: request, signal: opts.signal });
  }

  /** A batch's counts by state and one page of its jobs' records (pass nextCursor as `cursor` for the next). */
  async getBatch(
    id: string,
    opts: RequestOptions & { cursor?: string | number; limit?: number } = {},
  ): Promise<BatchView> {
    const params = new URLSearchParams();
    if (opts.cursor !== undefined) params.set('cursor', String(opts.cursor));
    if (opts.limit !== undefined) params.set('limit', String(opts.limit));
    const query = params.toString() ? `?${params}` : '';
    return this.json(OPERATIONS.getBatch, { id, query, signal: opts.signal });
  }

  private async json<O extends JsonOperation>(operation: O, call: Call): Promise<Answer<O>> {
    return (await (await this.send(operation, call)).json()) as Answer<O>;
  }

  /** One request, retried while it is rate limited (see the header); any other refusal throws. */
  private async send(operation: Operation, call: Call): Promise<Response> {
    const path = operation.path.replace('{id}', encodeURIComponent(call.id ?? ''));
    const url = `${this.url}${path}${call.query ?? ''}`;
    const init: RequestInit = {
      method: operation.method,
      headers: {
        authorization: `Bearer ${this.options.apiKey}`,
        ...(call.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...call.headers,
      },
      ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      ...(call.signal ? { signal: call.signal } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, init);
      } catch (e) {
        if (call.signal?.aborted) throw e;
        const cause = (e as Error).cause ?? (e as Error).message;
        throw new LidApiError(
          'unavailable',
          `cannot reach the gateway at ${this.url} (${cause})`,
          null,
          null,
          undefined,
          {
            cause: e,
          },
        );
      }
      if (res.ok) return res;
      const error = await refusal(res);
      const wait = error.retryAfterMs ?? 1000;
      if (
        error.code !== 'rate_limited' ||
        attempt >= this.options.rateLimitRetries ||
        wait > this.options.maxRetryAfterMs
      ) {
        throw error;
      }
      await sleep(wait, call.signal);
    }
  }
}

const submitHeaders = (opts: { idempotencyKey?: string; traceparent?: string }): Record<string, string> => ({
  ...(opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : {}),
  ...(opts.traceparent ? { traceparent: opts.traceparent } : {}),
});

interface Call {
  id?: string;
  query?: string;
  headers?: Record<string, string>;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

/** The error envelope of a refused request as a LidApiError; a body that is not one still gives its status. */
async function refusal(res: Response): Promise<LidApiError> {
  const text = await res.text().catch(() => '');
  const after = retryAfterMs(res.headers.get('Retry-After'));
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string; details: unknown } };
    if (typeof error.code === 'string' && typeof error.message === 'string') {
      return new LidApiError(error.code, error.message, error.details ?? null, res.status, after);
    }
  } catch {
    // not an envelope: a proxy's page, say
  }
  const code = res.status === 429 ? 'rate_limited' : res.status >= 500 ? 'unavailable' : 'internal';
  const message = `the gateway answered ${res.status} ${res.statusText}`.trim();
  return new LidApiError(code, message, { body: text.slice(0, 200) }, res.status, after);
}
