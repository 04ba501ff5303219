// The dashboard's API client: the same /v1 API as every client, with the API key the user
// entered (kept in localStorage) sent as a Bearer token.

const KEY = 'makam.apiKey';

export const getKey = (): string => localStorage.getItem(KEY) ?? '';
export const setKey = (key: string): void => (key ? localStorage.setItem(KEY, key) : localStorage.removeItem(KEY));

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const authHeaders = (): Record<string, string> => (getKey() ? { authorization: `Bearer ${getKey()}` } : {});

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) } });
  if (res.ok) return res;
  let code = 'http_error';
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code: string; message: string } };
    if (body.error) ({ code, message } = body.error);
  } catch {
    // not JSON
  }
  throw new ApiError(res.status, code, message);
}

export const getJson = async <T>(path: string, init?: RequestInit): Promise<T> => (await (await request(path, init)).json()) as T;

export interface StoredEvent {
  id: string;
  created_at: string;
  type: string;
  data: Record<string, any>;
}

/**
 * Follows a job's server-sent events (over fetch, since EventSource cannot send the API key):
 * from the start, reconnecting with Last-Event-ID when the connection drops, until `end`.
 */
export async function followEvents(jobId: string, onEvent: (e: StoredEvent) => void, signal: AbortSignal): Promise<string | null> {
  let cursor: string | null = null;
  for (let failures = 0; !signal.aborted; ) {
    try {
      const res = await fetch(`/v1/jobs/${jobId}/events`, {
        headers: { ...authHeaders(), accept: 'text/event-stream', ...(cursor ? { 'last-event-id': cursor } : {}) },
        signal,
      });
      if (res.status === 204) return null;
      if (!res.ok || !res.body) throw new ApiError(res.status, 'stream_failed', `event stream answered ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | null = null;
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (!data) continue;
          if (event === 'end') return (JSON.parse(data) as { status: string }).status;
          if (id) cursor = id;
          failures = 0;
          onEvent(JSON.parse(data) as StoredEvent);
        }
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
