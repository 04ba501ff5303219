// The dashboard's API client: @makam/client's, on the page's own origin, with the API key the
// user entered (kept in localStorage) sent as a Bearer token.
import { ApiError, MakamClient } from '@makam/client/http';
import { parseSse } from '@makam/client/sse';
import type { JobEvent } from '@makam/client/types';

const KEY = 'makam.apiKey';

export const getKey = (): string => localStorage.getItem(KEY) ?? '';
export const setKey = (key: string): void => (key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY));

export const client = new MakamClient({ apiKey: getKey });

/**
 * Follows a job's server-sent events (over fetch, since EventSource cannot send the API key):
 * from the start, reconnecting with Last-Event-ID when the connection drops, until `end`.
 */
export async function followEvents(jobId: string, onEvent: (e: JobEvent) => void, signal: AbortSignal): Promise<string | null> {
  let cursor: string | null = null;
  for (let failures = 0; !signal.aborted; ) {
    try {
      const res = await client.eventStream(jobId, cursor, { signal });
      if (res.status === 204) return null;
      if (!res.ok || !res.body) throw new ApiError(res.status, res.statusText, { code: 'stream_failed', message: `event stream answered ${res.status}`, param: null });
      for await (const msg of parseSse(res.body)) {
        if (!msg.data) continue;
        if (msg.event === 'end') return (JSON.parse(msg.data) as { status: string }).status;
        if (msg.id) cursor = msg.id;
        failures = 0;
        onEvent(JSON.parse(msg.data) as JobEvent);
      }
    } catch (err) {
      if (signal.aborted) return null;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    }
    failures += 1;
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** failures, 10_000)));
  }
  return null;
}
