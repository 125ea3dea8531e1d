// A job's event stream as LidClient reads it: the text/event-stream body of GET /v1/jobs/{id}/events parsed by
// eventsource-parser (a maintained parser, rather than splitting on blank lines by hand), and each message turned
// into a typed event. Reconnecting with Last-Event-ID is the client's part (common/http-client.ts).
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { JobStreamPayloads } from './http-api.js';
import type { JobRecord } from './job.js';
import { LidApiError } from './lid-api-error.js';

/** One event of a job's stream; `id` resumes after it (Last-Event-ID). The `final` event is the last. */
export type LidJobEvent =
  | ({ type: 'state'; id?: string } & JobStreamPayloads['state'])
  | ({ type: 'output'; id?: string } & JobStreamPayloads['output'])
  | { type: 'final'; id?: string; record: JobRecord };

/** The messages of a text/event-stream body, parsed by eventsource-parser; a broken connection is a LidApiError. */
export async function* readEvents(res: Response) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const next = await reader.read().catch((e: Error) => {
        throw new LidApiError('unavailable', `the connection broke (${e.message})`, null, null, undefined, {
          cause: e,
        });
      });
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Leaving early (the consumer stopped, or `final` came) closes the connection.
    await reader.cancel().catch(() => {});
  }
}

export function toJobEvent(event: string | undefined, id: string | undefined, data: string): LidJobEvent | undefined {
  const ids = id ? { id } : {};
  switch (event) {
    case 'state':
      return { type: 'state', ...ids, ...(JSON.parse(data) as JobStreamPayloads['state']) };
    case 'output':
      return { type: 'output', ...ids, ...(JSON.parse(data) as JobStreamPayloads['output']) };
    case 'final':
      return { type: 'final', ...ids, record: JSON.parse(data) as JobStreamPayloads['final'] };
    default:
      return undefined; // an event this client does not know: a newer gateway's
  }
}
