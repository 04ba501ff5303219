// A job's server-sent events (parsed by @makam/client's one parser), with resume: when the
// connection drops before the job's end, it reconnects with Last-Event-ID.
import { setTimeout as sleep } from 'node:timers/promises';
import { parseSse, type SseMessage } from '@makam/client/sse';
import { ApiClient, CliError, EXIT } from './api.ts';

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
      res = await client.eventStream(jobId, cursor);
    } catch (err) {
      if (++failures > retries) throw err;
      await sleep(Math.min(500 * 2 ** failures, 5000));
      continue;
    }
    if (res.status === 204) return; // nothing follows the cursor: the job had ended
    await client.check(res);
    try {
      for await (const msg of parseSse(res.body!)) {
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
