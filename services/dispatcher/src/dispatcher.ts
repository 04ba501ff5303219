// A dispatcher serves one resource class: a BullMQ Worker takes jobs from the class's queue, one
// per Python worker in its pool, and a RunDriver follows each. A TuneCoordinator takes the class's
// tune jobs and feeds their trials into the same queue. Cancels arrive by Redis pub/sub
// (BullMQ's own cancel only reaches the Worker that holds a job), with a poll of the job record
// as a fallback for messages lost while the connection was down.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { BlobStore } from '@makam/shared/blob-store';
import { DatasetStore } from '@makam/shared/dataset-store';
import { JobStore } from '@makam/shared/job-store';
import { Telemetry } from '@makam/shared/telemetry';
import { createRedis, type Redis } from '@makam/shared/redis';
import { isTerminal } from '@makam/shared/job-state';
import { queueName, type TrainJobData } from '@makam/shared/queues';
import { redisKeys } from '@makam/shared/keys';
import { studyKey } from '@makam/shared/tuning/search';
import type { Logger } from '@makam/shared/logger';
import type { DispatcherConfig } from './config.ts';
import { Detached, JobFailure, RetryableFailure } from './failures.ts';
import { RedisErrorLog } from './redis-errors.ts';
import { RunDriver, type RunOutcome } from './run-driver.ts';
import { traceJob } from './tracing.ts';
import { DispatcherTelemetry } from './telemetry.ts';
import { StudyClient, defaultStudyPython } from './tuning/study-client.ts';
import { TuneCoordinator } from './tuning/tune-coordinator.ts';
import { WorkerPool } from './worker-pool.ts';

/**
 * Removes every job that ended more than `retentionMs` ago, its model first, and a tune job's study
 * (`removeStudy`, given its id) before its record, so a sweep cut short finds the id again; returns
 * how many.
 */
export async function sweepEndedJobs(jobs: JobStore, blobs: BlobStore, retentionMs: number, signal?: AbortSignal, removeStudy?: (tuneJobId: string) => Promise<unknown>): Promise<number> {
  let removed = 0;
  for (;;) {
    const ids = await jobs.endedBefore(retentionMs, 100);
    for (const id of ids) {
      await rm(path.dirname(blobs.artifactPath(id)), { recursive: true, force: true });
      if (removeStudy && (await jobs.kind(id)) === 'tune') await removeStudy(id);
      await jobs.remove(id);
    }
    removed += ids.length;
    if (ids.length < 100 || signal?.aborted) return removed;
  }
}

/** How long a job whose run another dispatcher drives waits before it is offered again. */
const HAND_BACK_MS = 1_000;

export class Dispatcher {
  private readonly config: DispatcherConfig;
  private readonly log: Logger;
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly jobs: JobStore;
  private readonly datasets: DatasetStore;
  private readonly blobs: BlobStore;
  private readonly pool: WorkerPool;
  private readonly drivers = new Map<string, RunDriver>();
  private readonly closing = new AbortController();
  private worker: Worker<TrainJobData, RunOutcome> | null = null;
  private poller: NodeJS.Timeout | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private readonly telemetry: DispatcherTelemetry;
  private readonly study: StudyClient;
  private readonly trainQueue: Queue<TrainJobData>;
  private readonly coordinator: TuneCoordinator;
  private readonly redisErrors: RedisErrorLog;

  constructor(config: DispatcherConfig, log: Logger) {
    this.config = config;
    this.log = log.child({ resourceClass: config.MAKAM_CLASS });
    // Writes wait for Redis to come back rather than fail: an outage pauses the relay, loses nothing.
    this.redis = createRedis(config, { blocking: true });
    this.subscriber = createRedis(config, { blocking: true });
    this.redisErrors = new RedisErrorLog(this.log);
    this.redis.on('error', this.redisErrors.listener('commands'));
    this.subscriber.on('error', this.redisErrors.listener('cancel-subscriber'));
    const keys = redisKeys(config.MAKAM_REDIS_PREFIX);
    this.jobs = new JobStore(this.redis, keys);
    this.datasets = new DatasetStore(this.redis, keys);
    this.blobs = new BlobStore(config.MAKAM_STORE_DIR);
    this.pool = new WorkerPool(
      config.MAKAM_WORKERS.split(','),
      { ca: config.MAKAM_GRPC_TLS_CA, cert: config.MAKAM_GRPC_TLS_CERT, key: config.MAKAM_GRPC_TLS_KEY, serverName: config.MAKAM_GRPC_TLS_SERVER_NAME },
      config.MAKAM_GRPC_KEEPALIVE_MS,
    );
    this.subscriber.on('message', (_channel, jobId: string) => void this.cancel(jobId));
    this.keys = keys;
    this.telemetry = new DispatcherTelemetry(config, this.log, this.redisErrors.listener('telemetry'));
    this.study = new StudyClient(config.MAKAM_STUDY_PYTHON ?? defaultStudyPython(), config, this.log);
    this.trainQueue = new Queue<TrainJobData>(queueName(config.MAKAM_CLASS), { connection: this.redis, prefix: config.MAKAM_QUEUE_PREFIX });
    // The queue re-emits its connection's errors (this.redis's), and prints them without a listener.
    this.trainQueue.on('error', this.redisErrors.listener('commands'));
    const workersSeen = new Telemetry(this.redis, config.MAKAM_REDIS_PREFIX);
    this.coordinator = new TuneCoordinator({
      config,
      log: this.log,
      redisErrors: this.redisErrors,
      redis: this.redis,
      keys,
      jobs: this.jobs,
      blobs: this.blobs,
      study: this.study,
      trainQueue: this.trainQueue,
      // Every dispatcher of the class publishes its workers; this one's pool until they show.
      classWorkers: async () => Math.max(this.pool.size, (await workersSeen.workers()).filter((w) => w.resource_class === config.MAKAM_CLASS).length),
    });
  }

  private readonly keys: ReturnType<typeof redisKeys>;

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.keys.cancelChannel);
    this.worker = new Worker<TrainJobData, RunOutcome>(queueName(this.config.MAKAM_CLASS), (job, token) => traceJob(job, () => this.process(job, token)), {
      connection: createRedis(this.config, { blocking: true }),
      prefix: this.config.MAKAM_QUEUE_PREFIX,
      concurrency: this.pool.size,
      // A restarted dispatcher re-attaches to runs in progress, so a stall is not a failure.
      maxStalledCount: 10,
      lockDuration: this.config.MAKAM_LOCK_MS,
      stalledInterval: this.config.MAKAM_LOCK_MS,
    });
    this.worker.on('error', this.redisErrors.workerListener('train-worker', (err) => this.log.error({ err: err.message }, 'queue worker error')));
    // A failure's code travels on its class, no longer in its message.
    this.worker.on('failed', (job, err) => this.log.warn({ jobId: job?.id, code: err instanceof JobFailure || err instanceof RetryableFailure ? err.code : undefined, err: err.message, attemptsMade: job?.attemptsMade }, 'attempt failed'));
    this.coordinator.start();
    this.poller = setInterval(() => void this.pollCancels(), this.config.MAKAM_CANCEL_POLL_MS);
    if (this.config.MAKAM_JOB_RETENTION_DAYS > 0) this.sweeper = setInterval(() => void this.sweep(), this.config.MAKAM_RETENTION_SWEEP_MS);
    this.telemetry.start();
    this.log.info({ workers: this.config.MAKAM_WORKERS }, 'dispatcher started');
  }

  private async pollCancels(): Promise<void> {
    for (const jobId of this.drivers.keys()) {
      try {
        if ((await this.jobs.status(jobId)) === 'cancelling') await this.cancel(jobId);
      } catch (err) {
        this.log.warn({ jobId, err: (err as Error).message }, 'cancel poll failed');
      }
    }
  }

  /**
   * Removes jobs that ended more than MAKAM_JOB_RETENTION_DAYS ago: the model first, then the
   * records (a sweep cut short leaves the id listed as ended, and the next sweep finishes it).
   * Every dispatcher sweeps; removing twice is harmless.
   */
  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const removeStudy = (id: string) => this.study.delete(studyKey(this.config.MAKAM_REDIS_PREFIX, id));
      const removed = await sweepEndedJobs(this.jobs, this.blobs, this.config.MAKAM_JOB_RETENTION_DAYS * 24 * 3600_000, this.closing.signal, removeStudy);
      if (removed > 0) this.log.info({ jobs: removed }, 'ended jobs past their retention removed');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'retention sweep failed; next time');
    } finally {
      this.sweeping = false;
    }
  }

  private async cancel(jobId: string): Promise<void> {
    const driver = this.drivers.get(jobId);
    if (!driver) return;
    try {
      await driver.cancel();
    } catch (err) {
      this.log.warn({ jobId, err: (err as Error).message }, 'cancel did not reach the worker; will retry');
    }
  }

  private async process(job: Job<TrainJobData, RunOutcome>, token?: string): Promise<RunOutcome> {
    const jobId = job.data.jobId;
    const log = this.log.child({ jobId });
    const record = await this.jobs.get(jobId);
    if (!record) throw new JobFailure('job_missing', `no job record for ${jobId}`);
    if (isTerminal(record.status)) return 'skipped';
    const attempt = job.attemptsMade + 1;
    const finalAttempt = attempt >= (job.opts.attempts ?? 1);
    // A record already running means its dispatcher died: re-attach to the run on that worker. A
    // run on a worker another dispatcher drives is that one's to re-attach (its supervisor restarts
    // it): the job goes back, without spending an attempt, rather than being skipped as not queued
    // and left running with no one following it.
    if ((record.status === 'running' || record.status === 'cancelling') && record.worker !== null && !this.pool.has(record.worker)) {
      log.info({ worker: record.worker }, "the job's run is on a worker this dispatcher does not drive; handing it back");
      await job.moveToDelayed(Date.now() + HAND_BACK_MS, token);
      throw new DelayedError();
    }
    const reattach = (record.status === 'running' || record.status === 'cancelling') && record.worker !== null && this.pool.has(record.worker);
    const { address, client } = await this.pool.acquire(reattach ? record.worker : null, this.closing.signal, () => log.warn('every free worker is down or offers too few devices; the job waits for one'), record.devices ?? 1);
    const ctx = { jobs: this.jobs, datasets: this.datasets, blobs: this.blobs, log, reconnectMs: this.config.MAKAM_WORKER_RECONNECT_MS };
    // A trial's metrics go to its study through the coordinator's reporter; the driver only asks it.
    const driver = new RunDriver(ctx, jobId, address, this.telemetry.measure(client), this.coordinator.reporterFor(record, log));
    this.drivers.set(jobId, driver);
    try {
      if (!reattach) {
        const moved = await this.jobs.transition(jobId, 'running', { attempts: attempt, worker: address, started_at: record.started_at ?? new Date().toISOString(), error: null }, `running on ${address} (attempt ${attempt})`, ['queued']);
        if (!moved.ok) {
          log.info({ status: moved.from }, 'job is no longer queued; skipping');
          return 'skipped';
        }
      }
      if (record.status === 'cancelling') void this.cancel(jobId);
      return await driver.run(record, attempt, reattach);
    } catch (err) {
      if (err instanceof Detached) throw err;
      const now = new Date().toISOString();
      if (err instanceof JobFailure) {
        await this.jobs.transition(jobId, 'failed', { error: { code: err.code, message: err.message }, finished_at: now });
        log.warn({ code: err.code, err: err.message }, 'job failed');
        throw err;
      }
      // Anything else (a RetryableFailure, a Redis or gRPC fault of our own) is worth another attempt.
      const code = err instanceof RetryableFailure ? err.code : 'dispatch_error';
      const message = (err as Error).message;
      // A run lost while it was being cancelled is cancelled, not retried.
      if ((await this.jobs.transition(jobId, 'cancelled', { finished_at: now }, `cancelled (${code})`, ['cancelling'])).ok) return 'cancelled';
      if (finalAttempt) {
        await this.jobs.transition(jobId, 'failed', { error: { code, message: `${message} (after ${attempt} attempts)` }, finished_at: now });
      } else {
        await this.jobs.transition(jobId, 'queued', { error: { code, message } }, `attempt ${attempt} failed (${code}); retrying`);
      }
      log.warn({ err: message, attempt, finalAttempt }, 'attempt failed');
      throw err;
    } finally {
      this.drivers.delete(jobId);
      this.pool.release(address);
    }
  }

  /** Stops taking jobs and leaves runs in progress to a dispatcher that re-attaches. */
  async close(): Promise<void> {
    this.closing.abort();
    if (this.poller) clearInterval(this.poller);
    if (this.sweeper) clearInterval(this.sweeper);
    await this.telemetry.close();
    for (const driver of this.drivers.values()) driver.detach();
    await Promise.all([this.worker?.close(true), this.coordinator.close()]);
    await this.trainQueue.close();
    this.study.close();
    this.pool.close();
    this.subscriber.disconnect();
    this.redis.disconnect();
  }
}
