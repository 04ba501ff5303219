// A server-sent event reader over fetch (EventSource cannot send an Authorization header), with
// resume: when the connection drops before the job's end, it reconnects with Last-Event-ID.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, CliError, EXIT } from './api.ts';

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Splits a byte stream into messages (the subset of the format the API sends). */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const msg: SseMessage = { id: null, event: 'message', data: '' };
      let any = false;
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') msg.id = value;
        else if (field === 'event') msg.event = value;
        else if (field === 'data') msg.data += (msg.data ? '\n' : '') + value;
        else continue;
        any = true;
      }
      if (any && (msg.data || msg.event !== 'message')) yield msg;
    }
  }
}

/**
 * The job's events from the start (or after `after`) until the stream's `end` message, which is
 * yielded last. Reconnects up to `retries` times in a row when the connection breaks.
 */
export async function* jobEvents(client: ApiClient, jobId: string, after: string | null = null, retries = 5): AsyncGenerator<SseMessage> {
  let cursor = after;
  let failures = 0;
  for (;;) {
    let res: Response;
    try {
      res = await client.request(`/v1/jobs/${jobId}/events`, { headers: { accept: 'text/event-stream', ...(cursor ? { 'last-event-id': cursor } : {}) } });
    } catch (err) {
      if (++failures > retries) throw err;
      await sleep(Math.min(500 * 2 ** failures, 5000));
      continue;
    }
    if (res.status === 204) return; // nothing follows the cursor: the job had ended
    await client.check(res);
    try {
      for await (const msg of parseSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
        failures = 0;
        if (msg.id) cursor = msg.id;
        yield msg;
        if (msg.event === 'end') return;
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      // the connection broke mid-stream
    }
    if (++failures > retries) throw new CliError(EXIT.server, 'the event stream kept breaking before the job ended');
    await sleep(Math.min(500 * 2 ** failures, 5000));
  }
}
