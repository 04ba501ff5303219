// Job records, their event log and metric series in Redis. A record is a hash (one field per
// attribute, JSON-encoded except `status`), so status changes can be checked and applied by one
// Lua script; events and metrics are streams whose ids are the cursors clients page with.
import type { ChainableCommander, Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { execTransaction } from './redis.ts';
import { runScript, scriptIn } from './lua/scripts.ts';
import { isTerminal, sourcesOf, type JobStatus } from './job-state.ts';
import type { Search } from './tuning/search.ts';

/** A model as the job request names it. */
export interface ModelRequest {
  family: string;
  name?: string;
  config?: Record<string, unknown>;
  tokenizer?: Record<string, unknown>;
}

export interface Progress {
  epoch: number;
  step: number;
  total_steps: number;
  /** The worker's Progress.phase when not plain fine-tuning: "mlm" counts that phase's own epochs and steps. */
  phase?: string;
}

/** One evaluation on the validation split. */
/** A fine-tuning evaluation; an epoch of the masked-LM phase is an MlmPoint in the same series. */
export interface MetricPoint {
  epoch: number;
  step: number;
  train_loss: number;
  validation_loss: number;
  accuracy: number;
  weighted_f1: number;
  macro_f1: number;
}

/** The API's training-memory estimate of a job (services/api/src/placement/memory-estimate.ts), kept on the
 * record so the dispatcher can check a worker has room for it. */
export interface MemoryEstimate {
  total_bytes: number;
  parameters: number;
  trainable_parameters: number;
  weights_bytes: number;
  gradients_bytes: number;
  optimizer_bytes: number;
  activations_bytes: number;
  overhead_bytes: number;
  basis: string;
}

export interface JobError {
  code: string;
  message: string;
}

/** What a tune job's record shows of its study while it runs and after. */
export interface StudyProgress {
  trials: number;
  complete: number;
  pruned: number;
  failed: number;
  running: number;
  best: BestTrial | null;
}

export interface BestTrial {
  number: number;
  job_id: string;
  value: number;
  params: Record<string, unknown>;
}

/** A trial job's place in its study. */
export interface TrialInfo {
  number: number;
  params: Record<string, unknown>;
  /** The study's key prefix in Redis. */
  study: string;
  objective: Search['objective'];
  /** Its state in the study: running until the coordinator tells the study how it ended. */
  state: 'running' | 'complete' | 'pruned' | 'fail';
  value: number | null;
  /** The study has been told how the trial ended. */
  told: boolean;
  /** Set when the pruner stopped it, before the run is cancelled. */
  pruned_at_epoch?: number;
}

/** What every job's record holds, whatever its kind. */
interface JobBase {
  id: string;
  object: 'job';
  /** The tenant that owns the job; other tenants see it as missing. */
  tenant: string;
  status: JobStatus;
  model: ModelRequest;
  dataset: string;
  validation_dataset: string | null;
  test_dataset: string | null;
  /** A text-only dataset for the masked-LM phase (mlm_epochs); absent on jobs without one. */
  unlabeled_dataset?: string | null;
  hyperparameters: Record<string, unknown>;
  resource_class: string;
  /** Devices of one worker the job trains on (DDP under torchrun); absent: 1. */
  devices?: number;
  /** The training memory estimate that placed the job (per device). */
  estimate: MemoryEstimate | null;
  progress: Progress | null;
  /** The latest validation metrics. */
  metrics: MetricPoint | null;
  /** The final metrics.json summary of a succeeded job. */
  result: Record<string, unknown> | null;
  artifact: { sha256: string; size_bytes: number } | null;
  /** The latest checkpoint pulled into the artifact store; a retry resumes from it. */
  checkpoint?: { epoch: number; step: number; sha256: string; size_bytes: number } | null;
  error: JobError | null;
  attempts: number;
  /** The attempt that started the run on the worker (a later attempt may re-attach to it). */
  run_attempt?: number;
  worker: string | null;
  cancel_requested: boolean;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

/** One training run. */
export interface FinetuneJob extends JobBase {
  kind: 'finetune';
}

/** An Optuna search whose trials are jobs of their own. */
export interface TuneJob extends JobBase {
  kind: 'tune';
  /** The search, filled with defaults. */
  search: Search;
  /** The study's counts and best trial so far. */
  study: StudyProgress | null;
  /** The best trial once the study is done. */
  best_trial: BestTrial | null;
  /** How much each searched parameter mattered (Optuna's importance), once done. */
  importances: Record<string, number> | null;
}

/** One training run of a tune job's study. */
export interface TrialJob extends JobBase {
  kind: 'trial';
  /** The tune job it belongs to. */
  parent: string;
  trial: TrialInfo;
}

/** A finished job an ensemble combines: what its run needs of it, read when the ensemble was submitted. */
export interface EnsembleMember {
  job_id: string;
  family: string;
  /** Its model archive in the artifact store. */
  artifact: { sha256: string; size_bytes: number };
  /** The model and hyperparameters it was trained with (the ensemble's run carves its splits with them). */
  model: ModelRequest;
  hyperparameters: Record<string, unknown>;
}

/** Finished jobs' models combined on their shared splits; only the weights or the stacker are fit. Its
 * `model` is `{family: 'ensemble'}`, its datasets its members', its hyperparameters their shared data ones. */
export interface EnsembleJob extends JobBase {
  kind: 'ensemble';
  /** average: probabilities averaged with weights fit on validation; stack: a logistic regression on them. */
  method: 'average' | 'stack';
  members: EnsembleMember[];
}

/** A job's record; `kind` says which fields it has beyond the common ones. */
export type JobRecord = FinetuneJob | TuneJob | TrialJob | EnsembleJob;

/** Fields written to an existing record (any kind's). */
export type JobFields = Partial<Omit<FinetuneJob, 'kind'> & Omit<TuneJob, 'kind'> & Omit<TrialJob, 'kind'> & Omit<EnsembleJob, 'kind'>>;

/** The fields a new record starts with, unless the new job sets them. */
type QueuedField = 'object' | 'status' | 'progress' | 'metrics' | 'result' | 'artifact' | 'error' | 'attempts' | 'worker' | 'cancel_requested' | 'created_at' | 'started_at' | 'finished_at' | 'updated_at';
type NewOf<J> = J extends JobRecord ? Omit<J, QueuedField> & Partial<Pick<J, QueuedField>> : never;

/** What a new job is made of, by kind; the rest of its record starts empty. */
export type NewJob = NewOf<JobRecord>;

/** The record of a job just queued. */
export function queuedJob<J extends NewJob>(job: J) {
  const now = new Date().toISOString();
  return {
    object: 'job' as const,
    status: 'queued' as JobStatus,
    progress: null,
    metrics: null,
    result: null,
    artifact: null,
    error: null,
    attempts: 0,
    worker: null,
    cancel_requested: false,
    created_at: now,
    started_at: null,
    finished_at: null,
    updated_at: now,
    ...job,
  };
}

export const isTune = (job: JobRecord): job is TuneJob => job.kind === 'tune';
export const isTrial = (job: JobRecord): job is TrialJob => job.kind === 'trial';

/** What the event log holds; `type` says which. */
export type JobEvent =
  | { type: 'status'; status: JobStatus; message?: string; attempt?: number }
  | { type: 'started'; attempt: number; worker: string; pid: number; device: string; train_examples: number; validation_examples: number; total_steps: number; labels: string[]; test_examples?: number; resumed_from_epoch?: number }
  | ({ type: 'progress'; attempt: number; learning_rate: number; train_loss: number; phase?: string } & Progress)
  | ({ type: 'metrics'; attempt: number } & MetricPoint)
  | { type: 'metrics'; attempt: number; phase: 'mlm'; epoch: number; step: number; mlm_loss: number }
  | { type: 'log'; level: string; message: string; attempt?: number }
  | { type: 'checkpoint'; attempt: number; epoch: number; step: number; sha256: string; size_bytes: number };

export interface StoredEvent {
  id: string;
  created_at: string;
  data: JobEvent;
}

const PLAIN_FIELDS = new Set(['status', 'tenant']);

// Every size that reaches Redis is bounded (labels and texts come from users and may be huge: a
// report keyed by label grows with them). A record is its new-job fields, then fields the run adds,
// each capped, so a record never passes MAX_JOB_RECORD_BYTES; the full report stays in the artifact.
/** A point's place in the series: the masked-LM phase's steps (counted apart) come before fine-tuning's. */
const seriesOrder = (p: { step: number; phase?: string }): number => (p.phase === 'mlm' ? p.step - Number.MAX_SAFE_INTEGER : p.step);

/** The largest job record: all fields and values of its hash, in bytes. */
export const MAX_JOB_RECORD_BYTES = 1024 * 1024;
/** What a new job's record may hold (its request); the rest is room for what the run adds. */
export const MAX_NEW_JOB_BYTES = 384 * 1024;
/** The largest `result` (the final metrics summary; per-class scores beyond it stay in metrics.json). */
export const MAX_JOB_RESULT_BYTES = 64 * 1024;
/** The largest other field written after a job is created (error, trial, study, progress...). */
export const MAX_JOB_FIELD_BYTES = 16 * 1024;
/** The largest event in a job's event log or metric stream. */
export const MAX_JOB_EVENT_BYTES = 64 * 1024;

/** A new job whose record would be larger than MAX_NEW_JOB_BYTES; the API answers it as a 413. */
export class JobTooLargeError extends Error {
  readonly statusCode = 413;
  readonly code = 'job_too_large';
  constructor(bytes: number) {
    super(`the job request makes a ${bytes}-byte record, more than ${MAX_NEW_JOB_BYTES}; shorten model.config, hyperparameters or the search space`);
  }
}

/** Keys of the per-label parts of an evaluation report: the first to go when a value is too large. */
const REPORT_KEYS = new Set(['per_class', 'confusion_matrix']);
const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

function clip(value: unknown, maxChars: number, maxItems: number): unknown {
  if (typeof value === 'string') return value.length > maxChars ? `${value.slice(0, maxChars)}…` : value;
  if (Array.isArray(value)) return value.slice(0, maxItems).map((v) => clip(v, maxChars, maxItems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (REPORT_KEYS.has(k)) continue;
      if (Object.keys(out).length >= maxItems) break;
      out[k.length > maxChars ? `${k.slice(0, maxChars)}…` : k] = clip(v, maxChars, maxItems);
    }
    return out;
  }
  return value;
}

/**
 * `value` as it is when its JSON fits in `maxBytes`; else a smaller copy marked `truncated: true`:
 * per-class report parts dropped, strings, lists and maps clipped ever shorter, at worst only its
 * scalar fields. The same rule as the worker's events.py bound_event.
 */
export function boundJson<T>(value: T, maxBytes: number): T {
  if (byteLength(JSON.stringify(value) ?? '') <= maxBytes) return value;
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  for (const [chars, items] of [[1024, 1000], [128, 100], [32, 20]] as const) {
    let v = clip(value, chars, items);
    if (isObject) v = { ...(v as object), truncated: true };
    if (byteLength(JSON.stringify(v)) <= maxBytes) return v as T;
  }
  if (typeof value === 'string') return value.slice(0, Math.max(0, Math.floor(maxBytes / 4) - 2)) as T;
  if (!isObject) return [] as T;
  const scalars = Object.entries(value as object).filter(([k, v]) => k.length <= 32 && (typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 32)));
  return Object.fromEntries([...scalars.slice(0, 20), ['truncated', true]]) as T;
}

function encode(fields: JobFields): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out.push(k, PLAIN_FIELDS.has(k) ? String(v) : JSON.stringify(v));
  }
  return out;
}

/**
 * A new record as the field/value pairs JobStore.createIn writes; throws JobTooLargeError for one over
 * MAX_NEW_JOB_BYTES. The API encodes before anything is sent, so an oversized job changes nothing.
 */
export function encodeNewJob(record: JobRecord): string[] {
  const fields = encode(record);
  const bytes = fields.reduce((n, f) => n + byteLength(f), 0);
  if (bytes > MAX_NEW_JOB_BYTES) throw new JobTooLargeError(bytes);
  fields.push('worker_seq', '0');
  return fields;
}

/** What createIn checks before it writes a record that takes a place in the tenant's active-job limit. */
export interface Admission {
  limit: number;
  /** The records of the job's datasets, each to be there still. */
  datasetKeys: readonly string[];
  /** The job's key in the queue its add (in the same MULTI, after createIn) goes to: written on a refusal, so that add adds nothing. */
  queueJobKey: string;
}

/** Why createIn wrote no record: the tenant is at its limit, or a dataset (its index in datasetKeys) is gone. */
export type Refusal = { active: number; missing?: undefined } | { missing: number; active?: undefined };

/** createIn's reply (from the MULTI's replies) as a refusal; null when the record was written. */
export function refusalOf(reply: unknown): Refusal | null {
  const n = Number(reply);
  if (n === -1) return null;
  return n >= 0 ? { active: n } : { missing: -2 - n };
}

/** The fields a run adds to a record, each within its cap. */
function encodeBounded(fields: JobFields): string[] {
  const out = encode(fields);
  for (let i = 1; i < out.length; i += 2) {
    const max = out[i - 1] === 'result' ? MAX_JOB_RESULT_BYTES : MAX_JOB_FIELD_BYTES;
    if (byteLength(out[i]!) > max) out[i] = JSON.stringify(boundJson((fields as Record<string, unknown>)[out[i - 1]!], max));
  }
  return out;
}

const encodeEvent = (event: JobEvent): string => JSON.stringify(boundJson(event, MAX_JOB_EVENT_BYTES));

function decode(hash: Record<string, string>): JobRecord {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(hash)) {
    if (k === 'worker_seq') continue;
    out[k] = PLAIN_FIELDS.has(k) ? v : JSON.parse(v);
  }
  return out as unknown as JobRecord;
}

/** A record from HGETALL's reply as field/value pairs (what a Lua script returns of a hash); null for none. */
export function decodeJobFields(pairs: readonly string[]): JobRecord | null {
  if (pairs.length === 0) return null;
  // Straight from the pairs, as decode does from a hash: an object of them first took twice as long (every GET).
  const out: Record<string, unknown> = {};
  for (let i = 0; i < pairs.length; i += 2) {
    const k = pairs[i]!;
    if (k !== 'worker_seq') out[k] = PLAIN_FIELDS.has(k) ? pairs[i + 1]! : JSON.parse(pairs[i + 1]!);
  }
  return out as unknown as JobRecord;
}

const EVENTS_MAXLEN = 20_000;
const METRICS_MAXLEN = 100_000;
const FINISHED_MAXLEN = 100_000;

export class JobStore {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  /**
   * Creates `record` with no limit checked (a tune's trials, which run under the tune's place). One
   * script call, not a MULTI: a call refused while the primary has no replica (NOREPLICAS) is sent
   * again by the connection (createRedis), where a MULTI would fail at once.
   */
  async create(record: JobRecord): Promise<void> {
    const { keys, args } = this.createCall(record, encodeNewJob(record));
    await runScript(this.redis, 'createJob', keys, args);
  }

  /**
   * Adds the script that creates `record` (lua/createJob-8.lua) to `multi`, a MULTI made from `via`,
   * so a caller can send it in one round trip with its own commands: the API queues the job in the
   * same one. With `admission`, the record is written only if the tenant is under its limit and the
   * datasets are there: the script's reply says (refusalOf). Throws JobTooLargeError, having added
   * nothing, for a record over MAX_NEW_JOB_BYTES (encodeNewJob, which a caller may have run already
   * and pass the fields of).
   */
  createIn(multi: ChainableCommander, via: Redis, record: JobRecord, fields: readonly string[] = encodeNewJob(record), admission?: Admission): ChainableCommander {
    const { keys, args } = this.createCall(record, fields, admission);
    scriptIn(multi, via, 'createJob', keys, args);
    return multi;
  }

  /** lua/createJob-8.lua's keys and arguments for `record`. */
  private createCall(record: JobRecord, fields: readonly string[], admission?: Admission): { keys: string[]; args: Array<string | number> } {
    // A tune job's trials run under its one place in the tenant's active-job limit.
    const trial = record.kind === 'trial';
    const keys = [
      this.keys.job(record.id),
      this.keys.jobs,
      this.keys.tenantJobs(record.tenant),
      this.keys.tenantJobsOfKind(record.tenant, record.kind),
      this.keys.jobEvents(record.id),
      trial ? this.keys.tuneTrials(record.parent) : this.keys.tenantActive(record.tenant),
      this.keys.tenantReserving(record.tenant),
      admission?.queueJobKey ?? this.keys.job(record.id), // written only on a refusal, which needs an admission
    ];
    const args = [
      record.id,
      trial ? String(record.trial.number) : '',
      admission ? String(admission.limit) : '',
      this.keys.job(''),
      EVENTS_MAXLEN,
      encodeEvent({ type: 'status', status: record.status }),
      fields.length,
      ...fields,
      ...(admission?.datasetKeys ?? []),
    ];
    return { keys, args };
  }

  /** A tune job's trial jobs, by trial number. */
  async trials(tuneId: string): Promise<TrialJob[]> {
    const ids = await this.redis.zrange(this.keys.tuneTrials(tuneId), 0, -1);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is TrialJob => r !== null && isTrial(r));
  }

  async get(id: string): Promise<JobRecord | null> {
    const hash = await this.redis.hgetall(this.keys.job(id));
    return Object.keys(hash).length === 0 ? null : decode(hash);
  }

  /** The job's kind, read alone (a record may be large); null for none. */
  async kind(id: string): Promise<JobRecord['kind'] | null> {
    const kind = await this.redis.hget(this.keys.job(id), 'kind');
    return kind ? (JSON.parse(kind) as JobRecord['kind']) : null;
  }

  async status(id: string): Promise<JobStatus | null> {
    return (await this.redis.hget(this.keys.job(id), 'status')) as JobStatus | null;
  }

  /** A tenant's jobs (of one kind, if given), newest first; `after` is the last id of the previous page. */
  async list(tenant: string, limit: number, after?: string, kind?: JobRecord['kind']): Promise<{ data: JobRecord[]; next_cursor: string | null }> {
    const key = kind ? this.keys.tenantJobsOfKind(tenant, kind) : this.keys.tenantJobs(tenant);
    const ids = await this.redis.zrange(key, after ? `(${after}` : '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const records = await Promise.all(page.map((id) => this.get(id)));
    const data = records.filter((r): r is JobRecord => r !== null);
    return { data, next_cursor: ids.length > limit ? (page.at(-1) ?? null) : null };
  }

  /**
   * Moves the job to `to` if the status machine allows it from the current status, setting
   * `fields`, logging a status event and, for a terminal status, announcing the job's end on
   * jobsFinished, in one step (lua/transition-4.lua). Returns the status it came from.
   */
  async transition(
    id: string,
    to: JobStatus,
    fields: JobFields = {},
    message?: string,
    /** Narrows the statuses the job may come from (never widens the machine's). */
    onlyFrom?: JobStatus[],
  ): Promise<{ ok: boolean; from: JobStatus | null }> {
    const from = sourcesOf(to).filter((s) => !onlyFrom || onlyFrom.includes(s));
    const event: JobEvent = { type: 'status', status: to, ...(message ? { message } : {}), ...(fields.attempts ? { attempt: fields.attempts } : {}) };
    // Every status change passes here, from the API and the dispatchers alike: the one place to
    // announce a job's end (webhook deliveries are made from jobsFinished). In the script, so a
    // process that dies after the move cannot lose the announcement.
    const [ok, was] = (await runScript(this.redis, 'transition', [this.keys.job(id), this.keys.jobsEnded, this.keys.jobEvents(id), this.keys.jobsFinished], [
      from.join(','),
      to,
      isTerminal(to) ? '1' : '0',
      this.keys.tenantActivePrefix,
      id,
      encodeEvent(event),
      EVENTS_MAXLEN,
      FINISHED_MAXLEN,
      ...encodeBounded({ ...fields, updated_at: new Date().toISOString() }),
    ])) as [number, string];
    return { ok: ok === 1, from: (was || null) as JobStatus | null };
  }

  /** Sets fields that carry no status change (progress, worker, flags). */
  async update(id: string, fields: JobFields): Promise<void> {
    await this.redis.hset(this.keys.job(id), ...encodeBounded({ ...fields, updated_at: new Date().toISOString() }));
  }

  async appendEvent(id: string, event: JobEvent): Promise<void> {
    await this.redis.xadd(this.keys.jobEvents(id), 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'e', encodeEvent(event));
  }

  /** The worker sequence number already stored for the current attempt. */
  async workerSeq(id: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.job(id), 'worker_seq')) ?? 0);
  }

  /** A new run numbers its events from 1 again; `attempt` is the attempt that started it. */
  async startRun(id: string, attempt: number): Promise<void> {
    await this.redis.hset(this.keys.job(id), 'worker_seq', '0', 'run_attempt', String(attempt));
  }

  /**
   * Stores one worker event at most once: the event, its metric point, and the record fields it
   * updates (progress, latest metrics) in one atomic step (lua/appendWorkerEvent-3.lua). Returns
   * false for a duplicate.
   */
  async appendWorkerEvent(id: string, seq: number, event: JobEvent, fields: JobFields = {}): Promise<boolean> {
    const metric = event.type === 'metrics' ? encodeEvent(event) : '';
    const added = await runScript(this.redis, 'appendWorkerEvent', [this.keys.job(id), this.keys.jobEvents(id), this.keys.jobMetrics(id)], [
      String(seq),
      encodeEvent(event),
      metric,
      '',
      EVENTS_MAXLEN,
      METRICS_MAXLEN,
      ...encodeBounded({ ...fields, updated_at: new Date().toISOString() }),
    ]);
    return added === 1;
  }

  /** Jobs that reached a terminal status more than `retentionMs` ago (by Redis's clock), oldest first. */
  async endedBefore(retentionMs: number, limit: number): Promise<string[]> {
    const [sec, usec] = await this.redis.time();
    const cutoff = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - retentionMs;
    return this.redis.zrangebyscore(this.keys.jobsEnded, '-inf', cutoff, 'LIMIT', 0, limit);
  }

  /**
   * Removes an ended job: its record, event and metric streams, trial index and its place in every
   * list (the tenant's lists stay consistent: no id is left without its record). Idempotent.
   */
  async remove(id: string): Promise<void> {
    const [tenant = null, kind = null, parent = null] = await this.redis.hmget(this.keys.job(id), 'tenant', 'kind', 'parent');
    const parentId = parent ? (JSON.parse(parent) as string | null) : null;
    await execTransaction(this.redis, () => {
      const multi = this.redis.multi().del(this.keys.job(id), this.keys.jobEvents(id), this.keys.jobMetrics(id), this.keys.tuneTrials(id)).zrem(this.keys.jobs, id);
      if (tenant !== null) {
        multi.zrem(this.keys.tenantJobs(tenant), id);
        if (kind) multi.zrem(this.keys.tenantJobsOfKind(tenant, JSON.parse(kind) as string), id);
      }
      if (parentId) multi.zrem(this.keys.tuneTrials(parentId), id);
      return multi.zrem(this.keys.jobsEnded, id);
    });
  }

  /** Events after the cursor `after` (a stream id), oldest first. */
  async events(id: string, after: string | undefined, limit: number): Promise<{ data: StoredEvent[]; next_cursor: string | null }> {
    const entries = await this.redis.xrange(this.keys.jobEvents(id), after ? `(${after}` : '-', '+', 'COUNT', limit);
    const data = entries.map(([streamId, fields]) => ({
      id: streamId,
      created_at: new Date(Number(streamId.split('-')[0])).toISOString(),
      data: JSON.parse(fields[1]!) as JobEvent,
    }));
    return { data, next_cursor: data.at(-1)?.id ?? after ?? null };
  }

  /**
   * The metric series, in order: a later attempt that trains a step again (from its start, or
   * from a checkpoint) replaces what earlier attempts stored from that step on, so the series has
   * no gap and no step twice.
   */
  async metrics(id: string): Promise<Array<MetricPoint & { attempt: number }>> {
    const entries = await this.redis.xrange(this.keys.jobMetrics(id), '-', '+');
    const series: Array<MetricPoint & { attempt: number }> = [];
    for (const [, fields] of entries) {
      const { type: _type, ...p } = JSON.parse(fields[1]!) as MetricPoint & { attempt: number; type?: string };
      while (series.length && series.at(-1)!.attempt < p.attempt && seriesOrder(series.at(-1)!) >= seriesOrder(p)) series.pop();
      series.push(p);
    }
    return series;
  }
}
