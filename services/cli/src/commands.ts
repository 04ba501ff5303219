// What each `makam` command does. Results go to stdout (one JSON document with --json, or NDJSON
// events for `jobs watch --json`); progress and messages go to stderr.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { formatBytes, formatDuration, formatMetric as fmt, formatParam as fmtParam, formatParams as paramsText, formatValue as fmtValue } from '@makam/client/format';
import { TERMINAL, lastReported } from '@makam/client/jobs';
import type { CreateJobBody, Job, JobEvent } from '@makam/client/types';
import { ApiClient, CliError, EXIT } from './api.ts';
import { ProgressLine, bar } from './progress.ts';
import { jobEvents } from './sse.ts';

export interface Globals {
  api: string;
  apiKey?: string;
  json?: boolean;
}

type Json = Record<string, any>;
const out = (value: unknown) => process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}\n`);
const note = (message: string) => process.stderr.write(`${message}\n`);
const client = (g: Globals) => new ApiClient({ api: g.api, apiKey: g.apiKey });
/** Columns padded to their widest cell, two spaces apart. */
function table(header: string[], rows: unknown[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  return [header, ...rows].map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** A tune job's study in one line: "trials 3/8 [bar]  2 complete · 1 pruned · 0 failed · 1 running  best validation_loss 1.263 (trial #2)". */
export function studyLine(job: Job): string {
  const s = studyOf(job);
  const finished = s.complete + s.pruned + s.failed;
  return `trials ${finished}/${s.trials}  ${bar(s.trials ? finished / s.trials : 0)}  ${studySummary(job)}`;
}
const studyOf = (job: Job): Json => job.study ?? { trials: job.search?.trials ?? 0, complete: 0, pruned: 0, failed: 0, running: 0, best: null };
/** "2 complete · 1 pruned · 0 failed · 1 running  best validation_loss 1.263 (trial #2)". */
function studySummary(job: Job): string {
  const s = studyOf(job);
  const metric = job.search?.objective?.metric ?? 'objective';
  const best = s.best ? `best ${metric} ${fmtValue(s.best.value)} (trial #${s.best.number})` : 'no trial complete yet';
  return `${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · ${s.running} running  ${best}`;
}

/** A finetune job's or trial's progress in one line. */
function progressLine(job: Job): string {
  const p = job.progress;
  const epochs = Number(job.hyperparameters?.epochs ?? 0) || null;
  const parts: string[] = [job.status];
  if (p?.phase === 'mlm') {
    const mlmEpochs = Number(job.hyperparameters?.mlm_epochs ?? 0) || null;
    parts.push(`masked-LM epoch ${p.epoch}${mlmEpochs ? `/${mlmEpochs}` : ''}`, `step ${p.step}/${p.total_steps}`);
  } else if (p) parts.push(`${p.phase === 'refit' ? 'refit ' : ''}epoch ${p.epoch}${epochs ? `/${epochs}` : ''}`, `step ${p.step}/${p.total_steps}`);
  const m = job.metrics;
  if (m) parts.push(`val_loss ${fmt(m.validation_loss)} acc ${fmt(m.accuracy)} macro_f1 ${fmt(m.macro_f1)}`);
  return parts.join('  ');
}

/** "trial #2 of job_...: learning_rate=2.41e-4, warmup_ratio=0.09" for a trial job. */
const trialOf = (job: Job) => `trial #${job.trial?.number ?? '?'} of ${job.parent}: ${paramsText(job.trial?.params)}`;

// ---------------------------------------------------------------- datasets

export async function datasetsUpload(g: Globals, file: string, opts: { name?: string; format?: string }): Promise<number> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new CliError(EXIT.usage, `no such file: ${file}`);
  }
  const format = opts.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
  if (!['csv', 'jsonl'].includes(format)) throw new CliError(EXIT.usage, `--format must be jsonl or csv, not ${format}`);
  const ds = await client(g).uploadDataset(Readable.toWeb(createReadStream(file)) as never, { name: opts.name, contentType: format === 'csv' ? 'text/csv' : 'application/jsonl', size });
  if (g.json) out(ds);
  else out(`${ds.id}  ${ds.rows} rows, ${ds.labels?.length ?? 0} labels: ${(ds.labels ?? []).join(', ')}`);
  return EXIT.ok;
}

export async function datasetsGet(g: Globals, id: string): Promise<number> {
  out(await client(g).getDataset(id));
  return EXIT.ok;
}

// ---------------------------------------------------------------- jobs

export interface SubmitOptions {
  file?: string;
  dataset?: string;
  validationDataset?: string;
  testDataset?: string;
  unlabeledDataset?: string;
  family?: string;
  model?: string;
  epochs?: string;
  learningRate?: string;
  batchSize?: string;
  set?: string[];
  resourceClass?: string;
  idempotencyKey?: string;
  watch?: boolean;
  trials?: string;
  parallelism?: string;
}

/** A value from the command line: JSON when it parses (numbers, booleans, objects), else a string. */
function value(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function number(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new CliError(EXIT.usage, `${flag} must be a number, not ${raw}`);
  return n;
}

/** The job request: the file (JSON or YAML) if given, then the flags on top. */
export async function buildJobRequest(opts: SubmitOptions): Promise<Json> {
  let body: Json = {};
  if (opts.file) {
    let text: string;
    try {
      text = await readFile(opts.file, 'utf8');
    } catch {
      throw new CliError(EXIT.usage, `no such file: ${opts.file}`);
    }
    try {
      body = parseYaml(text) as Json; // YAML is a superset of JSON
    } catch (err) {
      throw new CliError(EXIT.usage, `${opts.file} is neither JSON nor YAML: ${(err as Error).message}`);
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new CliError(EXIT.usage, `${opts.file} must hold one job object`);
  }
  body.kind ??= 'finetune';
  if (body.kind === 'ensemble') return ensembleRequest(body, opts);
  if (opts.dataset) body.dataset = opts.dataset;
  if (opts.validationDataset) body.validation_dataset = opts.validationDataset;
  if (opts.testDataset) body.test_dataset = opts.testDataset;
  if (opts.unlabeledDataset) body.unlabeled_dataset = opts.unlabeledDataset;
  if (opts.resourceClass) body.resource_class = opts.resourceClass;
  if (opts.family || opts.model) {
    body.model = { ...(body.model ?? {}) };
    if (opts.family) body.model.family = opts.family;
    if (opts.model) body.model.name = opts.model;
  }
  const hp: Json = { ...(body.hyperparameters ?? {}) };
  if (opts.epochs) hp.epochs = number('--epochs', opts.epochs);
  if (opts.learningRate) hp.learning_rate = number('--learning-rate', opts.learningRate);
  if (opts.batchSize) hp.batch_size = number('--batch-size', opts.batchSize);
  for (const pair of opts.set ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(EXIT.usage, `--set takes name=value, not ${pair}`);
    hp[pair.slice(0, eq)] = value(pair.slice(eq + 1));
  }
  if (Object.keys(hp).length) body.hyperparameters = hp;
  if (opts.trials || opts.parallelism) {
    if (body.kind !== 'tune') throw new CliError(EXIT.usage, `--${opts.trials ? 'trials' : 'parallelism'} is for tune jobs: the request file needs "kind": "tune" and a "search"`);
    body.search = { ...(body.search ?? {}) };
    if (opts.trials) body.search.trials = number('--trials', opts.trials);
    if (opts.parallelism) body.search.parallelism = number('--parallelism', opts.parallelism);
  }
  if (!body.dataset) throw new CliError(EXIT.usage, 'a job needs a dataset: --dataset ds_... or "dataset" in the file');
  for (const param of ['dataset', 'validation_dataset', 'test_dataset', 'unlabeled_dataset']) {
    const v = body[param];
    if (typeof v === 'string' && /^<.*>$/.test(v)) throw new CliError(EXIT.usage, `"${param}" in ${opts.file ?? 'the request'} is a placeholder (${v}): give --${param.replace(/_/g, '-')} ds_...`);
  }
  if (!body.model?.family) throw new CliError(EXIT.usage, 'a job needs a model family: --family encoder (or model.family in the file)');
  return body;
}

/** The flags that shape a training job, each with the request field it sets: an ensemble has none of them. */
const TRAINING_FLAGS: Array<[keyof SubmitOptions, string]> = [
  ['dataset', '--dataset'], ['validationDataset', '--validation-dataset'], ['testDataset', '--test-dataset'],
  ['unlabeledDataset', '--unlabeled-dataset'], ['family', '--family'], ['model', '--model'], ['epochs', '--epochs'],
  ['learningRate', '--learning-rate'], ['batchSize', '--batch-size'], ['set', '--set'], ['trials', '--trials'],
  ['parallelism', '--parallelism'],
];

/** An ensemble request (kind: ensemble): its members' models, datasets and data hyperparameters are theirs. */
function ensembleRequest(body: Json, opts: SubmitOptions): Json {
  const where = opts.file ?? 'the request';
  for (const [key, flag] of TRAINING_FLAGS) {
    const v = opts[key];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) {
      throw new CliError(EXIT.usage, `${flag} is not for an ensemble job: it trains nothing, and its model, datasets and hyperparameters are its members'; leave ${flag} out`);
    }
  }
  if (opts.resourceClass) body.resource_class = opts.resourceClass;
  const members = body.members;
  if (!Array.isArray(members) || members.length === 0) throw new CliError(EXIT.usage, `an ensemble job needs "members" in ${where}: a list of 2 to 8 finished job ids (job_...)`);
  members.forEach((m: unknown, i: number) => {
    if (typeof m === 'string' && /^<.*>$/.test(m)) throw new CliError(EXIT.usage, `"members.${i}" in ${where} is a placeholder (${m}): put a finished job's id (job_...) there`);
  });
  return body;
}

export async function jobsSubmit(g: Globals, opts: SubmitOptions): Promise<number> {
  const body = await buildJobRequest(opts);
  // The request goes as the file and flags made it: the API is the one validator.
  const job = await client(g).createJob(body as CreateJobBody, { idempotencyKey: opts.idempotencyKey });
  if (!opts.watch) {
    if (g.json) out(job);
    else out(`${job.id}  ${job.status} on ${job.resource_class}`);
    return EXIT.ok;
  }
  if (!g.json) note(`${job.id}  ${job.status} on ${job.resource_class}`);
  return jobsWatch(g, job.id);
}

export async function jobsList(g: Globals, opts: { limit: string; all?: boolean; kind?: string }): Promise<number> {
  const limit = number('--limit', opts.limit);
  const jobs: Job[] = [];
  let after: string | null = null;
  do {
    const page = await client(g).listJobs({ limit: Math.min(100, limit), kind: opts.kind, after });
    jobs.push(...page.data);
    after = opts.all ? page.next_cursor : null;
  } while (after);
  if (g.json) {
    out({ object: 'list', data: jobs });
    return EXIT.ok;
  }
  if (jobs.length === 0) {
    out('no jobs');
    return EXIT.ok;
  }
  const rows = jobs.map((j) => {
    const kind: string = j.kind ?? 'finetune';
    let progress = j.progress ? `${j.progress.phase === 'mlm' ? 'MLM ' : ''}${j.progress.step}/${j.progress.total_steps}` : '-';
    let best: string;
    if (kind === 'tune') {
      const s = j.study;
      const metric = j.search?.objective?.metric ?? 'objective';
      progress = s ? `${s.complete + s.pruned + s.failed}/${s.trials} trials` : '-';
      best = s?.best ? `${metric} ${fmt(s.best.value)}` : '-';
    } else {
      const metric = (j.hyperparameters?.metric_for_best_model as string | undefined) ?? 'macro_f1';
      const value = j.result?.[metric] ?? j.result?.summary?.[metric] ?? (j.metrics as Json | null)?.[metric];
      best = typeof value === 'number' ? `${metric} ${fmt(value)}` : '-';
    }
    return [j.id, kind === 'trial' ? `trial #${j.trial?.number ?? '?'}` : kind, j.status, j.model?.family ?? '-', j.model?.name ?? (j.model?.config ? `(${j.model.config.model_type} config)` : '-'), j.dataset, progress, best, j.created_at?.slice(0, 19).replace('T', ' ') ?? ''];
  });
  out(table(['ID', 'KIND', 'STATUS', 'FAMILY', 'MODEL', 'DATASET', 'PROGRESS', 'BEST', 'CREATED'], rows));
  return EXIT.ok;
}

export async function jobsGet(g: Globals, id: string): Promise<number> {
  const job = await client(g).getJob(id);
  out(job);
  if (!g.json) {
    if (job.kind === 'tune') note(`${job.id}  ${job.status}  ${studyLine(job)}`);
    else note(`${job.id}  ${job.kind === 'trial' ? `${trialOf(job)}  ` : ''}${progressLine(job)}`);
  }
  return EXIT.ok;
}

/** A tune job's trials as a table: number (* the best), state, job status, objective, epochs, each parameter, job id. */
export async function jobsTrials(g: Globals, id: string): Promise<number> {
  const api = client(g);
  const list = await api.listTrials(id);
  if (g.json) {
    out(list);
    return EXIT.ok;
  }
  const job = await api.getJob(id);
  const trials = list.data;
  if (trials.length === 0) {
    out(`no trials yet (${job.status})`);
    return EXIT.ok;
  }
  const metric: string = job.search?.objective?.metric ?? 'value';
  const names = Object.keys(job.search?.space ?? {});
  for (const t of trials) for (const k of Object.keys(t.params ?? {})) if (!names.includes(k)) names.push(k);
  const best = job.best_trial ?? job.study?.best ?? null;
  const epochs = Number(job.hyperparameters?.epochs ?? 0) || null;
  const rows = trials.map((t) => {
    // A pruned or failed trial has no objective: its last epoch's, in parentheses.
    const last = lastReported(t);
    const value = typeof t.value === 'number' ? fmtValue(t.value) : last !== null ? `(${fmtValue(last)})` : '-';
    return [`${t.number}${best && best.number === t.number ? '*' : ''}`, t.state, t.status, value, `${t.intermediate_values?.length ?? 0}${epochs ? `/${epochs}` : ''}`, ...names.map((k) => (k in (t.params ?? {}) ? fmtParam(t.params[k]) : '-')), t.job_id];
  });
  out(table(['TRIAL', 'STATE', 'STATUS', metric.toUpperCase(), 'EPOCHS', ...names.map((n) => n.toUpperCase()), 'JOB'], rows));
  out(`${studySummary(job)}${best ? `; * marks the best (${metric}, ${job.search?.objective?.direction ?? ''})` : ''}`);
  return EXIT.ok;
}

export async function jobsCancel(g: Globals, id: string): Promise<number> {
  const job = await client(g).cancelJob(id);
  if (g.json) out(job);
  else out(`${job.id}  ${job.status}`);
  return EXIT.ok;
}

/** Follows a job's events to its end: a progress bar (or NDJSON with --json); exit 0 only for success. */
export async function jobsWatch(g: Globals, id: string): Promise<number> {
  const api = client(g);
  const job = await api.getJob(id);
  if (job.kind === 'tune') return watchTune(g, api, job);
  if (job.kind === 'trial' && !g.json) note(trialOf(job));
  const epochs = Number(job.hyperparameters?.epochs ?? 0) || null;
  const line = new ProgressLine();
  let status: string = job.status;
  let epoch = 0;
  let step = 0;
  let total = 0;
  let attempt = 0;
  let loss: number | null = null;
  let latest: Json | null = null;
  let rate: { t0: number; s0: number } | null = null;
  const mlmEpochs = Number(job.hyperparameters?.mlm_epochs ?? 0) || null;
  let mlm = false; // progress of the masked-LM phase: its own epochs and steps, before fine-tuning's

  const render = (important: boolean) => {
    const fraction = total ? step / total : 0;
    const eta = rate && step > rate.s0 ? ((Date.now() - rate.t0) / 1000 / (step - rate.s0)) * (total - step) : NaN;
    const parts = [
      mlm ? `masked-LM epoch ${epoch}${mlmEpochs ? `/${mlmEpochs}` : ''}` : `epoch ${epoch}${epochs ? `/${epochs}` : ''}`,
      bar(fraction),
      `step ${step}/${total || '?'}`,
      `${Math.floor(fraction * 100)}%`,
      `ETA ${formatDuration(eta)}`,
    ];
    if (loss !== null) parts.push(`loss ${fmt(loss)}`);
    if (latest) parts.push(`val_loss ${fmt(latest.validation_loss)} acc ${fmt(latest.accuracy)} macro_f1 ${fmt(latest.macro_f1)}`);
    line.update(parts.join('  '), important);
  };

  for await (const msg of jobEvents(api, id)) {
    if (msg.event === 'end') {
      status = (JSON.parse(msg.data) as { status: string }).status;
      break;
    }
    const e = JSON.parse(msg.data) as JobEvent;
    if (g.json) {
      out(JSON.stringify(e));
      if (e.type === 'status') status = e.data.status;
      continue;
    }
    const d = e.data;
    switch (e.type) {
      case 'status':
        status = d.status;
        line.log(`${e.created_at?.slice(11, 19) ?? ''} ${d.status}${d.message ? `: ${d.message}` : ''}`);
        break;
      case 'started':
        if (d.attempt !== attempt) {
          attempt = d.attempt;
          rate = null;
          latest = null;
          loss = null;
        }
        total = d.total_steps;
        line.log(`training on ${d.device} (${d.worker}): ${d.train_examples} training, ${d.validation_examples} validation examples, ${d.total_steps} steps; labels ${(d.labels ?? []).join(', ')}`);
        break;
      case 'progress':
        if ((d.phase === 'mlm') !== mlm) {
          mlm = d.phase === 'mlm';
          rate = null; // the steps count afresh in the next phase, so does the ETA
        }
        epoch = d.epoch;
        step = d.step;
        total = d.total_steps;
        loss = d.train_loss;
        rate ??= { t0: Date.now(), s0: step };
        render(false);
        break;
      case 'metrics':
        if (d.phase === 'mlm') {
          // An epoch of the masked-LM phase: its loss only, not the job's validation metrics.
          line.log(`masked-LM epoch ${d.epoch}: mlm_loss ${Number(d.mlm_loss).toFixed(4)}`);
          break;
        }
        latest = d;
        mlm = false;
        epoch = d.epoch;
        step = d.step;
        render(true);
        break;
      case 'log':
        if (d.level === 'error' || d.level === 'warning') line.log(`${d.level}: ${d.message}`);
        break;
    }
  }
  if (!TERMINAL.has(status)) status = (await api.getJob(id)).status;
  line.done();
  if (!g.json) {
    const final = await api.getJob(id);
    const m = final.result?.summary ?? final.result ?? final.metrics;
    if (final.status === 'succeeded' && m) out(`${final.id}  succeeded: accuracy ${fmt(m.accuracy)}, macro_f1 ${fmt(m.macro_f1)}, weighted_f1 ${fmt(m.weighted_f1)}`);
    else if (final.status === 'pruned') out(`${final.id}  pruned: stopped by its tune job's pruner${final.trial?.pruned_at_epoch ? ` after epoch ${final.trial.pruned_at_epoch}` : ''} (not an error; a pruned trial leaves no model)`);
    else if (final.error) out(`${final.id}  ${final.status}: ${final.error.message} (${final.error.code})`);
    else out(`${final.id}  ${final.status}`);
    status = final.status;
  }
  return status === 'succeeded' ? EXIT.ok : EXIT.jobFailed;
}

/**
 * Follows a tune job to its end: its events (trials queued and closed, status) as lines, and the
 * study's progress (polled: trials complete, pruned, failed, running; the best so far) as the bar.
 */
async function watchTune(g: Globals, api: ApiClient, job: Job): Promise<number> {
  const id = job.id;
  const line = new ProgressLine();
  let shown = '';
  const show = (j: Job) => {
    const text = studyLine(j);
    if (text !== shown) line.update(text, true);
    shown = text;
  };
  if (!g.json) show(job);
  const stop = new AbortController();
  let refreshing = false;
  const refresh = async () => {
    if (refreshing || g.json) return;
    refreshing = true;
    try {
      show(await api.getJob(id));
    } catch {
      // the next poll tries again
    } finally {
      refreshing = false;
    }
  };
  const poller = (async () => {
    while (!stop.signal.aborted) {
      await sleep(2000, undefined, { signal: stop.signal }).catch(() => {});
      if (!stop.signal.aborted) await refresh();
    }
  })();
  try {
    for await (const msg of jobEvents(api, job.id)) {
      if (msg.event === 'end') break;
      const e = JSON.parse(msg.data) as JobEvent;
      if (g.json) {
        out(JSON.stringify(e));
        continue;
      }
      const at = e.created_at?.slice(11, 19) ?? '';
      if (e.type === 'status') line.log(`${at} ${e.data.status}${e.data.message ? `: ${e.data.message}` : ''}`);
      else if (e.type === 'log') {
        line.log(`${at} ${e.data.level === 'info' ? '' : `${e.data.level}: `}${e.data.message}`);
        void refresh();
      }
    }
  } finally {
    stop.abort();
    await poller;
  }
  const final = await api.getJob(id);
  if (!g.json) {
    show(final);
    line.done();
    const best = final.best_trial;
    const m = final.result;
    const metric = final.search?.objective?.metric ?? 'objective';
    if (final.status === 'succeeded' && best) {
      const report = m ? `; accuracy ${fmt(m.accuracy)}, macro_f1 ${fmt(m.macro_f1)}, weighted_f1 ${fmt(m.weighted_f1)} on the ${m.evaluated_on ?? 'validation'} split` : '';
      out(`${final.id}  succeeded: best trial #${best.number}, ${metric} ${fmtValue(best.value)} (${paramsText(best.params)})${report}`);
    } else if (final.error) out(`${final.id}  ${final.status}: ${final.error.message} (${final.error.code})`);
    else out(`${final.id}  ${final.status}  ${studySummary(final)}`);
  }
  return final.status === 'succeeded' ? EXIT.ok : EXIT.jobFailed;
}

/** Downloads the model archive with a progress bar, checking its sha256 against X-Makam-Sha256. */
export async function jobsDownload(g: Globals, id: string, opts: { output?: string; extract?: string }): Promise<number> {
  const api = client(g);
  const res = await api.modelArchive(id);
  const expected = res.headers.get('x-makam-sha256');
  const size = Number(res.headers.get('content-length') ?? 0);
  const file = path.resolve(opts.output ?? `${id}-model.tar.gz`);
  const part = `${file}.part`;
  await mkdir(path.dirname(file), { recursive: true });
  const hash = createHash('sha256');
  const sink = createWriteStream(part);
  const line = new ProgressLine(process.stderr, 2000);
  const started = Date.now();
  let received = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      received += chunk.length;
      if (!sink.write(chunk)) await new Promise<void>((r) => sink.once('drain', () => r()));
      if (!g.json) {
        const speed = received / Math.max(0.001, (Date.now() - started) / 1000);
        line.update(`${bar(size ? received / size : 0)}  ${formatBytes(received)}${size ? ` / ${formatBytes(size)}` : ''}  ${formatBytes(speed)}/s  ETA ${formatDuration(size ? (size - received) / speed : NaN)}`);
      }
    }
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    sink.destroy();
    await rm(part, { force: true });
    throw new CliError(EXIT.server, `the download broke off: ${(err as Error).message}`);
  }
  line.done();
  const sha256 = hash.digest('hex');
  if (!expected || sha256 !== expected.toLowerCase() || (size && received !== size)) {
    await rm(part, { force: true });
    throw new CliError(EXIT.server, `checksum mismatch: the server said sha256 ${expected ?? '(none)'} and ${size} bytes, received ${sha256} and ${received} bytes; nothing was kept`);
  }
  await rename(part, file);
  let extracted: string | null = null;
  if (opts.extract) {
    extracted = path.resolve(opts.extract);
    await mkdir(extracted, { recursive: true });
    const tar = spawnSync('tar', ['xzf', file, '-C', extracted], { encoding: 'utf8' });
    if (tar.status !== 0) throw new CliError(EXIT.server, `tar could not unpack ${file}: ${tar.stderr.trim()}`);
  }
  if (g.json) out({ file, bytes: received, sha256, verified: true, extracted_to: extracted });
  else out(`${file}  ${formatBytes(received)}, sha256 ${sha256} verified${extracted ? `; unpacked into ${extracted}` : ''}`);
  return EXIT.ok;
}
