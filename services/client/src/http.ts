// The /v1 calls the CLI and the dashboard make, typed from the API's schemas. fetch only, so it
// runs in Node and in the browser alike.
import type { ApiErrorBody, CreateJobBody, Dataset, Job, JobKind, JobList, TrialList } from './types.ts';

/** A non-2xx answer; `body` is the API's error object when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly statusText: string;
  readonly body: ApiErrorBody | null;
  constructor(status: number, statusText: string, body: ApiErrorBody | null) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.statusText = statusText;
    this.body = body;
  }
  get code(): string {
    return this.body?.code ?? 'http_error';
  }
}

/** The API could not be reached (refused, reset, DNS); `detail` is the network error's code. */
export class UnreachableError extends Error {
  readonly base: string;
  readonly detail: string;
  constructor(base: string, detail: string) {
    super(`cannot reach the API at ${base}: ${detail}`);
    this.base = base;
    this.detail = detail;
  }
}

export interface ClientOptions {
  /** The API's origin; '' for the page's own origin (the dashboard). */
  base?: string;
  /** Sent as a Bearer token; a function is read at each call (the dashboard's key can change). */
  apiKey?: string | (() => string | undefined);
}

type Init = RequestInit & { duplex?: 'half' };
const id = encodeURIComponent;

export class MakamClient {
  readonly base: string;
  private readonly apiKey: ClientOptions['apiKey'];

  constructor({ base = '', apiKey }: ClientOptions = {}) {
    this.base = base.replace(/\/$/, '');
    this.apiKey = apiKey;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = typeof this.apiKey === 'function' ? this.apiKey() : this.apiKey;
    return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
  }

  /** A request whatever its status; a network failure throws UnreachableError (an abort rethrows as is). */
  async send(pathname: string, init: Init = {}): Promise<Response> {
    try {
      return await fetch(`${this.base}${pathname}`, { ...init, headers: this.headers(init.headers as Record<string, string> | undefined) });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const e = err as Error & { cause?: { code?: string; message?: string } };
      throw new UnreachableError(this.base || "the page's origin", e.cause?.code ?? e.cause?.message ?? e.message);
    }
  }

  /** Throws ApiError for a non-2xx answer. */
  async check(res: Response): Promise<Response> {
    if (res.ok) return res;
    let body: ApiErrorBody | null = null;
    try {
      body = ((await res.json()) as { error?: ApiErrorBody }).error ?? null;
    } catch {
      // not the API's error shape
    }
    throw new ApiError(res.status, res.statusText, body);
  }

  async request(pathname: string, init: Init = {}): Promise<Response> {
    return this.check(await this.send(pathname, init));
  }

  async json<T>(pathname: string, init: Init = {}): Promise<T> {
    return (await (await this.request(pathname, init)).json()) as T;
  }

  // ------------------------------------------------------------ datasets

  uploadDataset(body: NonNullable<RequestInit['body']>, opts: { name?: string; contentType: string; size?: number }): Promise<Dataset> {
    const query = opts.name ? `?name=${id(opts.name)}` : '';
    const headers: Record<string, string> = { 'content-type': opts.contentType, ...(opts.size !== undefined ? { 'content-length': String(opts.size) } : {}) };
    return this.json<Dataset>(`/v1/datasets${query}`, { method: 'POST', headers, body, duplex: 'half' });
  }

  getDataset(datasetId: string): Promise<Dataset> {
    return this.json<Dataset>(`/v1/datasets/${id(datasetId)}`);
  }

  // ------------------------------------------------------------ jobs

  createJob(body: CreateJobBody, opts: { idempotencyKey?: string } = {}): Promise<Job> {
    return this.json<Job>('/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.idempotencyKey ? { 'idempotency-key': opts.idempotencyKey } : {}) },
      body: JSON.stringify(body),
    });
  }

  listJobs(query: { limit?: number; after?: string | null; kind?: JobKind | string }, init: Init = {}): Promise<JobList> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.kind) params.set('kind', query.kind);
    if (query.after) params.set('after', query.after);
    return this.json<JobList>(`/v1/jobs?${params}`, init);
  }

  getJob(jobId: string, init: Init = {}): Promise<Job> {
    return this.json<Job>(`/v1/jobs/${id(jobId)}`, init);
  }

  cancelJob(jobId: string, init: Init = {}): Promise<Job> {
    return this.json<Job>(`/v1/jobs/${id(jobId)}/cancel`, { ...init, method: 'POST' });
  }

  listTrials(jobId: string, init: Init = {}): Promise<TrialList> {
    return this.json<TrialList>(`/v1/jobs/${id(jobId)}/trials`, init);
  }

  /** The model archive (tar.gz; its sha256 in X-Makam-Sha256), unread. */
  modelArchive(jobId: string, init: Init = {}): Promise<Response> {
    return this.request(`/v1/jobs/${id(jobId)}/artifacts/model`, init);
  }

  /** One file of the model archive (metrics.json, README.md...), unread. */
  modelFile(jobId: string, file: string, init: Init = {}): Promise<Response> {
    return this.request(`/v1/jobs/${id(jobId)}/artifacts/model/files/${file}`, init);
  }

  /** The job's event stream after `cursor` (a Last-Event-ID), unchecked; 204 means the job had ended. */
  eventStream(jobId: string, cursor: string | null, init: Init = {}): Promise<Response> {
    return this.send(`/v1/jobs/${id(jobId)}/events`, { ...init, headers: { accept: 'text/event-stream', ...(cursor ? { 'last-event-id': cursor } : {}) } });
  }
}
