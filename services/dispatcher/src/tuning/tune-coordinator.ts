// Runs tune jobs: asks the study for trials, gives each a job of its own on the class's training
// queue (so each is seen, retried and cancelled like any job), tells the study how each ended,
// and at the end makes the best trial's model the tune job's. It only waits on Redis and the
// study process, so it needs no worker. Everything it knows is in Redis: a coordinator that dies is
// replaced by another (BullMQ's stalled-job check) that picks the study up where it was.
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, type Job, type Queue } from 'bullmq';
import { createRedis, type Redis } from '@makam/shared/redis';
import { isTerminal } from '@makam/shared/job-state';
import { newJobId } from '@makam/shared/ids';
import { objectiveValue, studyKey } from '@makam/shared/tuning/search';
import { isTune, queuedJob, type BestTrial, type JobRecord, type JobStore, type StudyProgress, type TrialInfo, type TrialJob, type TuneJob } from '@makam/shared/job-store';
import { requestCancel } from '@makam/shared/cancel';
import { traceEnqueue } from '@makam/shared/tracing';
import { trainJobOptions, tuneQueueName, type TrainJobData } from '@makam/shared/queues';
import type { BlobStore } from '@makam/shared/blob-store';
import type { Logger } from '@makam/shared/logger';
import type { RedisKeys } from '@makam/shared/keys';
import type { DispatcherConfig } from '../config.ts';
import { Detached, JobFailure, StudyProtocolError } from '../failures.ts';
import { NO_REPORTER, type RunReporter } from '../run-driver.ts';
import type { StudyClient } from './study-client.ts';
import { TrialReporter } from './trial-reporter.ts';
import { traceJob } from '../tracing.ts';
import { RedisErrorLog } from '../redis-errors.ts';

export interface CoordinatorDeps {
  config: DispatcherConfig;
  log: Logger;
  /** Where its Worker's connection errors are logged, rate-limited (redis-errors.ts); its own if not given. */
  redisErrors?: RedisErrorLog;
  redis: Redis;
  keys: RedisKeys;
  jobs: JobStore;
  blobs: BlobStore;
  study: StudyClient;
  /** The class's training queue, where trial jobs go. */
  trainQueue: Queue<TrainJobData>;
  /** How many workers the class has now (trials beyond that would only wait in the queue). */
  classWorkers: () => Promise<number>;
}

type Outcome = 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export class TuneCoordinator {
  private readonly d: CoordinatorDeps;
  private worker: Worker<TrainJobData, Outcome> | null = null;
  private connection: Redis | null = null;
  private closing = false;

  constructor(deps: CoordinatorDeps) {
    this.d = deps;
  }

  start(): void {
    const { config } = this.d;
    this.connection = createRedis(config, { blocking: true });
    this.worker = new Worker<TrainJobData, Outcome>(tuneQueueName(config.MAKAM_CLASS), (job) => traceJob(job, () => this.process(job)), {
      connection: this.connection,
      prefix: config.MAKAM_QUEUE_PREFIX,
      concurrency: config.MAKAM_TUNE_CONCURRENCY,
      maxStalledCount: 10,
      lockDuration: config.MAKAM_LOCK_MS,
      stalledInterval: config.MAKAM_LOCK_MS,
    });
    this.worker.on('error', (this.d.redisErrors ?? new RedisErrorLog(this.d.log)).workerListener('tune-worker', (err) => this.d.log.error({ err: err.message }, 'tune queue worker error')));
  }

  /** What a job's run reports to: a trial's study, which may prune it; nothing for other jobs. */
  reporterFor(record: JobRecord, log: Logger): RunReporter {
    if (record.kind !== 'trial') return NO_REPORTER;
    return new TrialReporter({ jobs: this.d.jobs, study: this.d.study, log }, record.id, record.trial, Number(record.hyperparameters.epochs ?? Infinity));
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker?.close(true);
    // BullMQ closes only the connections it made; this one is ours.
    this.connection?.disconnect();
  }

  private async process(job: Job<TrainJobData, Outcome>): Promise<Outcome> {
    const id = job.data.jobId;
    const log = this.d.log.child({ jobId: id, kind: 'tune' });
    const { jobs } = this.d;
    let record = await this.tuneJob(id);
    if (isTerminal(record.status)) return 'skipped';
    if (record.status === 'queued') {
      const moved = await jobs.transition(id, 'running', { attempts: job.attemptsMade + 1, started_at: record.started_at ?? new Date().toISOString(), error: null }, 'study started', ['queued']);
      if (!moved.ok) return 'skipped';
    }
    const { search } = record;
    const key = studyKey(this.d.config.MAKAM_REDIS_PREFIX, id);
    try {
      await this.d.study.create(key, search);
      let trials = await jobs.trials(id);
      // A coordinator that died between asking for a trial and queueing its job left that trial
      // running in the study; close it. Trial records without a queue entry are queued again
      // (BullMQ ignores an id it already holds).
      const { failed } = await this.d.study.failRunning(key, trials.map((t) => t.trial.number));
      if (failed.length) log.warn({ trials: failed }, 'closed trials that never got a job');
      for (const t of trials) if (t.status === 'queued') await this.enqueue(t.id);
      log.info({ trials: trials.length, budget: search.trials }, 'coordinating the study');

      let exhausted = false;
      let cancelSent = false;
      let shown = '';
      for (;;) {
        if (this.closing) throw new Detached();
        // One read of the records a poll; what the poll changes is kept in `trials` as it goes.
        record = await this.tuneJob(id);
        trials = await jobs.trials(id);
        for (const t of trials) if (isTerminal(t.status) && !t.trial.told) t.trial = await this.closeTrial(record, key, t, log);
        const active = trials.filter((t) => !isTerminal(t.status));
        if (record.status === 'cancelling') {
          if (!cancelSent) {
            for (const t of active) await requestCancel(jobs, this.d.redis, this.d.keys, this.d.trainQueue, t.id, 'cancelled with its tune job');
            cancelSent = true;
          }
          if (active.length === 0) return await this.finish(record, key, trials, 'cancelled', log);
        } else if (record.status !== 'running') {
          return 'skipped';
        } else {
          const wanted = () => !exhausted && trials.length < search.trials && active.length < search.parallelism;
          // The class's workers are looked up only when a trial could be started.
          const cap = wanted() ? Math.min(search.parallelism, Math.max(1, await this.d.classWorkers())) : 0;
          while (wanted() && active.length < cap) {
            const asked = await this.d.study.ask(key);
            if (asked.number === null) {
              exhausted = true; // a grid with every point asked
              break;
            }
            if (asked.params === null) throw new StudyProtocolError('ask', '/result/params', 'is null while number is not');
            const trial = await this.createTrial(record, key, asked.number, asked.params, log);
            trials.push(trial);
            active.push(trial);
          }
          if ((exhausted || trials.length >= search.trials) && active.length === 0) return await this.finish(record, key, trials, 'done', log);
        }
        const progress = this.progress(record, trials);
        const json = JSON.stringify(progress);
        if (json !== shown) {
          await jobs.update(id, { study: progress });
          shown = json;
        }
        await sleep(this.d.config.MAKAM_TUNE_POLL_MS);
      }
    } catch (err) {
      if (err instanceof Detached) throw err;
      if (err instanceof JobFailure) {
        // No retry cures it, and BullMQ fails only the queue entry: the record says why now.
        await jobs.transition(id, 'failed', { error: { code: err.code, message: err.message }, finished_at: new Date().toISOString() });
        log.error({ code: err.code, err: err.message }, 'tune job failed');
        throw err;
      }
      // The study process or Redis failed: BullMQ retries the coordination, which resumes.
      log.warn({ err: (err as Error).message }, 'coordination interrupted; it resumes on the next attempt');
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
        await jobs.transition(id, 'failed', { error: { code: 'study_error', message: (err as Error).message }, finished_at: new Date().toISOString() });
      }
      throw err;
    }
  }

  /** The tune job's record as it is now; a record gone or of another kind fails the coordination for good. */
  private async tuneJob(id: string): Promise<TuneJob> {
    const record = await this.d.jobs.get(id);
    if (!record) throw new JobFailure('job_missing', `no job record for ${id}`);
    if (!isTune(record)) throw new JobFailure('not_a_tune_job', `job ${id} is a ${record.kind} job, not a tune job`);
    return record;
  }

  private async enqueue(trialId: string): Promise<void> {
    // A trial's trace is its tune job's: the coordination's span is the parent of its enqueue.
    const queue = this.d.trainQueue;
    await traceEnqueue(queue.name, trialId, (trace) => queue.add('train', { jobId: trialId, trace }, trainJobOptions(trialId, this.d.config.MAKAM_JOB_ATTEMPTS)));
  }

  private async createTrial(tune: TuneJob, key: string, number: number, params: Record<string, unknown>, log: Logger): Promise<TrialJob> {
    const trial: TrialInfo = { number, params, study: key, objective: tune.search.objective, state: 'running', value: null, told: false };
    const record: TrialJob = queuedJob({
      id: newJobId(),
      tenant: tune.tenant,
      kind: 'trial',
      model: tune.model,
      dataset: tune.dataset,
      validation_dataset: tune.validation_dataset,
      test_dataset: tune.test_dataset,
      ...(tune.unlabeled_dataset ? { unlabeled_dataset: tune.unlabeled_dataset } : {}),
      hyperparameters: { ...tune.hyperparameters, ...params },
      resource_class: tune.resource_class,
      estimate: tune.estimate,
      parent: tune.id,
      trial,
    });
    await this.d.jobs.create(record);
    await this.enqueue(record.id);
    await this.d.jobs.appendEvent(tune.id, { type: 'log', level: 'info', message: `trial ${number} queued as ${record.id}: ${JSON.stringify(params)}` });
    log.info({ trial: number, trialJob: record.id, params }, 'trial queued');
    return record;
  }

  /** Tells the study how a trial ended, once; returns the trial as now recorded. */
  private async closeTrial(tune: TuneJob, key: string, t: TrialJob, log: Logger): Promise<TrialInfo> {
    const info = t.trial;
    const metric = tune.search.objective.metric;
    let state: TrialInfo['state'] = t.status === 'succeeded' ? 'complete' : t.status === 'pruned' ? 'pruned' : 'fail';
    const value = state === 'complete' ? objectiveValue(t.result, metric) : null;
    if (state === 'complete' && value === null) state = 'fail';
    await this.d.study.tell(key, info.number, state, value);
    const closed: TrialInfo = { ...info, state, value, told: true };
    await this.d.jobs.update(t.id, { trial: closed });
    const why = state === 'complete' ? `${metric} ${value}` : state === 'pruned' ? `stopped at epoch ${info.pruned_at_epoch ?? t.progress?.epoch ?? '?'}` : `${t.status}${t.error ? `: ${t.error.code}` : ''}`;
    await this.d.jobs.appendEvent(tune.id, { type: 'log', level: 'info', message: `trial ${info.number} ${state} (${why})` });
    log.info({ trial: info.number, state, value }, 'trial closed');
    return closed;
  }

  private progress(tune: TuneJob, trials: TrialJob[]): StudyProgress {
    const count = (s: TrialInfo['state']) => trials.filter((t) => t.trial.told && t.trial.state === s).length;
    const sign = tune.search.objective.direction === 'maximize' ? 1 : -1;
    let best: BestTrial | null = null;
    for (const t of trials) {
      const info = t.trial;
      if (info.state !== 'complete' || info.value === null) continue;
      if (!best || sign * info.value > sign * best.value) best = { number: info.number, job_id: t.id, value: info.value, params: info.params };
    }
    return { trials: tune.search.trials, complete: count('complete'), pruned: count('pruned'), failed: count('fail'), running: trials.filter((t) => !t.trial.told).length, best };
  }

  private async finish(tune: TuneJob, key: string, trials: TrialJob[], how: 'done' | 'cancelled', log: Logger): Promise<Outcome> {
    const { jobs, blobs } = this.d;
    const summary = await this.d.study.summary(key, true);
    const progress = this.progress(tune, trials);
    const best = summary.best;
    const bestJob = best ? trials.find((t) => t.trial.number === best.number) : undefined;
    const best_trial: BestTrial | null = best && bestJob ? { number: best.number, job_id: bestJob.id, value: best.value, params: best.params } : null;
    const now = new Date().toISOString();
    const fields = { study: progress, best_trial, importances: summary.importances, finished_at: now };
    if (how === 'cancelled') {
      await jobs.transition(tune.id, 'cancelled', fields, 'cancelled; the study stays readable');
      log.info('tune job cancelled');
      return 'cancelled';
    }
    if (!best_trial || !bestJob?.artifact) {
      const message = `none of the ${trials.length} trials completed (${progress.failed} failed, ${progress.pruned} pruned); see GET /v1/jobs/${tune.id}/trials`;
      await jobs.transition(tune.id, 'failed', { ...fields, error: { code: 'no_trial_completed', message } });
      log.warn(message);
      return 'failed';
    }
    // The tune job's model is its best trial's, with that trial's test report.
    await blobs.link(blobs.artifactPath(bestJob.id), blobs.artifactPath(tune.id));
    await jobs.transition(tune.id, 'succeeded', { ...fields, result: bestJob.result, artifact: bestJob.artifact, error: null }, `best: trial ${best_trial.number} (${tune.search.objective.metric} ${best_trial.value})`);
    log.info({ best: best_trial }, 'tune job succeeded');
    return 'succeeded';
  }
}
