// Drives one job on one Python worker: makes sure the worker has the data, starts the run (or
// re-attaches to the run already there), relays its events into Redis exactly once, pulls the
// finished model into the artifact store, and records how the job ended. Everything here waits on
// I/O, so BullMQ keeps renewing the job's lock while a run takes hours. Moving files is
// transfers.ts's; what a trial tells its study is its RunReporter's.
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { isGrpcError } from './grpc/adapter.ts';
import type { BlobStore } from '@makam/shared/blob-store';
import type { DatasetStore } from '@makam/shared/dataset-store';
import type { EnsembleJob, JobEvent, JobRecord, JobStore, MetricPoint } from '@makam/shared/job-store';
import type { Logger } from '@makam/shared/logger';
import type { WorkerClient } from './grpc/worker-client.ts';
import { Detached, JobFailure, RetryableFailure } from './failures.ts';
import { download, upload, type Transfers } from './transfers.ts';
import { recordPhase, untraced } from './tracing.ts';
import { RunState, type WatchRunResponse } from '@makam/shared/gen/makam/worker/v1/worker_pb.js';

const UNARY_MS = 30_000;
const PROBE_MS = 5_000;
const WATCHDOG_MS = 10_000;
const WATCH_MS = 30 * 24 * 3600_000;

export interface RunContext {
  jobs: JobStore;
  datasets: DatasetStore;
  blobs: BlobStore;
  log: Logger;
  reconnectMs: number;
}

/**
 * Who hears of a run's metrics beyond its job record, and may stop it: a trial's study, whose
 * pruner ranks it against the other trials. The tune coordinator provides one per trial job.
 */
export interface RunReporter {
  /** True once the run is to stop for the reporter's reason (a pruned trial, perhaps before a restart). */
  readonly stopping: boolean;
  /** Hears one epoch's metrics; true when the run must stop now. Its own faults are logged, never thrown. */
  report(point: MetricPoint): Promise<boolean>;
}

/** For a job nobody but its record hears of. */
export const NO_REPORTER: RunReporter = { stopping: false, report: async () => false };

/** Outcome of a run as the dispatcher hands it to BullMQ. */
export type RunOutcome = 'succeeded' | 'cancelled' | 'pruned' | 'skipped';

export class RunDriver {
  private readonly ctx: RunContext;
  private readonly jobId: string;
  private readonly address: string;
  private readonly client: WorkerClient;
  private readonly reporter: RunReporter;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private readonly transfers: Transfers;
  private cancelSent = false;
  /** Set once the run's final event arrived: what follows is the outcome, not a stream fault. */
  private finished = false;
  /** The last phase span recorded: a reopened stream resends those after the stored events' cursor. */
  private spansSeq = 0;

  constructor(ctx: RunContext, jobId: string, address: string, client: WorkerClient, reporter: RunReporter = NO_REPORTER) {
    this.ctx = ctx;
    this.jobId = jobId;
    this.address = address;
    this.client = client;
    this.reporter = reporter;
    this.log = ctx.log.child({ jobId, worker: address });
    this.transfers = { client, blobs: ctx.blobs, runId: jobId, log: this.log, signal: this.abort.signal };
  }

  /** Asks the worker to stop the run; the watch then sees its CANCELLED event. Idempotent. */
  async cancel(): Promise<void> {
    if (this.cancelSent) return;
    this.cancelSent = true;
    this.log.info('cancelling run on worker');
    try {
      await this.client.cancelRun({ runId: this.jobId }, { timeoutMs: UNARY_MS });
    } catch (err) {
      if (!isGrpcError(err, GrpcStatus.NOT_FOUND)) {
        this.cancelSent = false;
        throw err;
      }
    }
  }

  /** Stops watching without touching the run (the dispatcher is shutting down). */
  detach(): void {
    this.abort.abort();
  }

  /** Starts or re-attaches, then follows the run to its end. */
  async run(record: JobRecord, attempt: number, reattach: boolean): Promise<RunOutcome> {
    if (this.reporter.stopping) void this.cancel().catch(() => undefined); // pruned before a dispatcher restart
    let state: RunState | undefined;
    if (reattach) {
      try {
        state = (await this.client.getRun({ runId: this.jobId }, { timeoutMs: UNARY_MS })).state;
        this.log.info({ state: RunState[state] }, 're-attaching to run in progress');
      } catch (err) {
        if (!isGrpcError(err, GrpcStatus.NOT_FOUND)) throw err;
      }
    }
    // Events are tagged with the attempt that created the run, so a run re-attached by a later
    // attempt keeps one metric series.
    const runAttempt = state === undefined ? await this.start(record, attempt) : (record.run_attempt ?? attempt);
    return this.follow(runAttempt);
  }

  /** Starts the run, or finds it still running from an earlier attempt; returns the run's attempt. */
  private async start(record: JobRecord, attempt: number): Promise<number> {
    const load = async (id: string | null) => {
      if (!id) return null;
      const ds = await this.ctx.datasets.get(id);
      if (!ds) throw new JobFailure('dataset_missing', `the job's dataset ${id} is gone`);
      return ds;
    };
    const [train, validation, test] = [await load(record.dataset), await load(record.validation_dataset), await load(record.test_dataset ?? null)];
    const unlabeled = record.kind === 'ensemble' ? null : await load(record.unlabeled_dataset ?? null);
    await this.checkCapacity(record);
    for (const ds of [train, validation, test, unlabeled]) if (ds) await upload(this.transfers, { kind: 'dataset', sha256: ds.sha256 });
    // A retry resumes from the last checkpoint an earlier attempt left in the artifact store.
    const resume = record.checkpoint && (await this.ctx.blobs.exists(this.ctx.blobs.checkpointPath(this.jobId))) ? record.checkpoint : null;
    if (resume) await upload(this.transfers, { kind: 'checkpoint', checkpoint: resume });
    // An ensemble runs with its first member's model and hyperparameters (their data ones are all
    // members'), its members' models sent up as datasets are.
    const ensemble = record.kind === 'ensemble' ? await this.sendMembers(record) : undefined;
    const spec = record.kind === 'ensemble' ? record.members[0]! : record;
    const request = {
      runId: this.jobId,
      ...(ensemble ? { ensemble } : {}),
      resumeCheckpointSha256: resume?.sha256 ?? '',
      model: { family: spec.model.family, name: spec.model.name ?? '', config: spec.model.config as never, tokenizer: spec.model.tokenizer as never },
      trainDatasetSha256: train!.sha256,
      validationDatasetSha256: validation?.sha256 ?? '',
      testDatasetSha256: test?.sha256 ?? '',
      unlabeledDatasetSha256: unlabeled?.sha256 ?? '',
      hyperparameters: spec.hyperparameters as never,
      devices: record.devices ?? 1,
    };
    const startRun = () =>
      this.client.startRun(request, { timeoutMs: UNARY_MS }).catch((err: unknown) => {
        // The worker refuses what no retry can fix: a bad model spec or hyperparameters.
        if (isGrpcError(err, GrpcStatus.INVALID_ARGUMENT)) throw new JobFailure('invalid_job', err.details, { cause: err });
        throw err;
      });
    let started = await startRun();
    // A run an earlier attempt lost sight of may have finished meanwhile (the worker hung while its
    // training child went on): a success is collected as it is; a failure or cancellation trains anew.
    if (!started.created && started.state !== RunState.RUNNING && started.state !== RunState.SUCCEEDED) {
      await this.client.deleteRun({ runId: this.jobId }, { timeoutMs: UNARY_MS });
      started = await startRun();
    }
    if (!started.created) {
      this.log.info({ attempt, runAttempt: record.run_attempt, state: RunState[started.state] }, 're-attaching to a run an earlier attempt started');
      return record.run_attempt ?? attempt;
    }
    // A new run numbers its events from 1 again.
    await this.ctx.jobs.startRun(this.jobId, attempt);
    this.log.info({ attempt }, 'run started');
    return attempt;
  }

  /** Sends each member's model to the worker (unless it holds it); returns StartRun's ensemble. */
  private async sendMembers(record: EnsembleJob) {
    for (const m of record.members) {
      if (!(await this.ctx.blobs.exists(this.ctx.blobs.artifactPath(m.job_id)))) {
        throw new JobFailure('member_missing', `the model of member ${m.job_id} is no longer in the artifact store (its job was removed); submit the ensemble without it`);
      }
      await upload(this.transfers, { kind: 'artifact', jobId: m.job_id, sha256: m.artifact.sha256, sizeBytes: m.artifact.size_bytes });
    }
    return { method: record.method, members: record.members.map((m) => ({ jobId: m.job_id, artifactSha256: m.artifact.sha256 })) };
  }

  /** A worker is never handed a job larger than its memory (as it reports it). */
  private async checkCapacity(record: JobRecord): Promise<void> {
    const caps = await this.client.getCapabilities({}, { timeoutMs: UNARY_MS });
    // An ensemble's worker loads each member's model, so it must know every member's family.
    const families = record.kind === 'ensemble' ? record.members.map((m) => m.family) : [record.model.family];
    const unsupported = families.find((f) => !caps.families.includes(f));
    if (unsupported) {
      throw new JobFailure('family_unsupported', `the worker at ${this.address} trains ${caps.families.join(', ')}, not ${unsupported}`);
    }
    const need = record.estimate?.total_bytes ?? 0;
    const have = Number(caps.memoryTotalBytes);
    if (need > have) {
      const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
      throw new JobFailure('worker_too_small', `the job needs about ${gib(need)} but the worker at ${this.address} (${caps.gpuName || caps.device}) has ${gib(have)}; submit it to a larger resource_class`);
    }
  }

  /** Relays events until the run's final event; reconnects while the worker comes back in time. */
  private async follow(attempt: number): Promise<RunOutcome> {
    let lostSince: number | null = null;
    for (;;) {
      const after = await this.ctx.jobs.workerSeq(this.jobId);
      // One stream at a time, with a watchdog that reopens it when the worker has events the
      // stream does not deliver (a stream stuck after a network fault).
      const stream = new AbortController();
      const onAbort = () => stream.abort();
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      let received = after;
      let relaying = false;
      const watchdog = this.watchdog(() => (relaying ? Infinity : received), () => stream.abort());
      try {
        // After a break, a short unary call proves the worker answers before a stream (which has
        // no deadline worth the name) is opened again: a hung worker fails it in seconds.
        if (lostSince !== null) await this.client.getRun({ runId: this.jobId }, { timeoutMs: PROBE_MS, signal: stream.signal });
        this.log.debug({ afterSeq: after, runAttempt: attempt }, 'watching the run');
        for await (const event of this.client.watchRun({ runId: this.jobId, afterSeq: BigInt(after) }, { timeoutMs: WATCH_MS, signal: stream.signal })) {
          lostSince = null;
          relaying = true; // a long relay (a checkpoint download) is not a stalled stream
          const outcome = await this.relay(event, attempt);
          relaying = false;
          received = Number(event.seq);
          if (outcome) return outcome;
        }
        throw new RetryableFailure('watch_ended', 'the worker ended the event stream before the run finished');
      } catch (err) {
        if (this.finished) throw err;
        if (this.abort.signal.aborted) throw new Detached();
        if (isGrpcError(err, GrpcStatus.NOT_FOUND)) throw new RetryableFailure('run_lost', 'the worker no longer knows the run (restarted with a new state directory?)');
        if (!isGrpcError(err, GrpcStatus.UNAVAILABLE, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.INTERNAL, GrpcStatus.UNKNOWN, GrpcStatus.CANCELLED) && !(err instanceof RetryableFailure)) throw err;
        lostSince ??= Date.now();
        if (Date.now() - lostSince > this.ctx.reconnectMs) {
          throw new RetryableFailure('worker_unreachable', `lost the worker at ${this.address}: ${(err as Error).message}`, { cause: err });
        }
        this.log.warn({ err: (err as Error).message }, 'event stream broke; reconnecting');
        await sleep(1000, undefined, { signal: this.abort.signal }).catch(() => {});
      } finally {
        clearInterval(watchdog);
        this.abort.signal.removeEventListener('abort', onAbort);
      }
    }
  }

  /**
   * Every WATCHDOG_MS, asks the worker how far the run is; if it has had events the stream has not
   * delivered for two checks running, the stream is stuck and `reopen` is called.
   */
  private watchdog(received: () => number, reopen: () => void): NodeJS.Timeout {
    let behind = 0;
    const timer = setInterval(() => {
      untraced(() => this.client.getRun({ runId: this.jobId }, { timeoutMs: PROBE_MS })).then(
        (run) => {
          behind = Number(run.lastSeq) > received() ? behind + 1 : 0;
          if (behind >= 2) {
            this.log.warn({ lastSeq: Number(run.lastSeq), received: received() }, 'event stream stalled; reopening it');
            behind = 0;
            reopen();
          }
        },
        () => undefined, // an unreachable worker is the stream's own error to report
      );
    }, WATCHDOG_MS);
    timer.unref();
    return timer;
  }

  /** Stores one event; on the final event, finishes the job and returns its outcome. */
  private async relay(ev: WatchRunResponse, attempt: number): Promise<RunOutcome | null> {
    const seq = Number(ev.seq);
    const e = ev.event;
    switch (e.case) {
      case 'started': {
        const v = e.value;
        const event: JobEvent = { type: 'started', attempt, worker: this.address, pid: v.pid, device: v.device, train_examples: v.trainExamples, validation_examples: v.validationExamples, total_steps: v.totalSteps, labels: v.labels, test_examples: v.testExamples, resumed_from_epoch: v.resumedFromEpoch };
        await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, event, { progress: { epoch: v.resumedFromEpoch, step: 0, total_steps: v.totalSteps } });
        return null;
      }
      case 'progress': {
        const v = e.value;
        const progress = { epoch: v.epoch, step: v.step, total_steps: v.totalSteps, ...(v.phase ? { phase: v.phase } : {}) };
        // phase "refit": the final refit on train + validation, numbered on from the first pass.
        await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'progress', attempt, ...progress, train_loss: v.trainLoss, learning_rate: v.learningRate }, { progress });
        return null;
      }
      case 'metrics': {
        const v = e.value;
        if (v.phase === 'mlm') {
          // An epoch of the masked-LM phase: in the series and the log, never the job's latest validation metrics or a trial's objective.
          await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'metrics', attempt, phase: 'mlm', epoch: v.epoch, step: v.step, mlm_loss: v.mlmLoss });
          return null;
        }
        const point = { epoch: v.epoch, step: v.step, train_loss: v.trainLoss, validation_loss: v.validationLoss, accuracy: v.accuracy, weighted_f1: v.weightedF1, macro_f1: v.macroF1 };
        await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'metrics', attempt, ...point }, { metrics: point });
        if (await this.reporter.report(point)) await this.cancel().catch((err: Error) => this.log.warn({ err: err.message }, 'prune did not reach the worker'));
        return null;
      }
      case 'checkpoint':
        try {
          // Pulled into the artifact store as it is saved, so it outlives the worker.
          const checkpoint = await download(this.transfers, { kind: 'checkpoint', minEpoch: e.value.epoch });
          await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'checkpoint', attempt, ...checkpoint }, { checkpoint });
        } catch (err) {
          // A lost checkpoint costs a retry some epochs, never the run.
          this.log.warn({ err: (err as Error).message, epoch: e.value.epoch }, 'checkpoint not stored');
          await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'log', attempt, level: 'warning', message: `checkpoint of epoch ${e.value.epoch} not stored: ${(err as Error).message}` });
        }
        return null;
      case 'log':
        await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'log', attempt, level: e.value.level, message: e.value.message });
        return null;
      case 'span':
        // The run's phases belong to the job's trace, not to its public event log.
        if (seq > this.spansSeq) recordPhase(e.value, { 'makam.job.id': this.jobId, 'makam.attempt': attempt, 'makam.worker': this.address });
        this.spansSeq = Math.max(this.spansSeq, seq);
        return null;
      case 'finished':
        this.finished = true;
        return this.finish(seq, e.value.state, e.value.errorCode, e.value.errorMessage, e.value.retryable, (e.value.finalMetrics ?? null) as Record<string, unknown> | null);
      default:
        return null;
    }
  }

  private async finish(seq: number, state: RunState, code: string, message: string, retryable: boolean, finalMetrics: Record<string, unknown> | null): Promise<RunOutcome> {
    const now = new Date().toISOString();
    if (state === RunState.SUCCEEDED) {
      const { sha256, size_bytes } = await download(this.transfers, { kind: 'artifact' });
      const artifact = { sha256, size_bytes };
      await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'log', level: 'info', message: `model stored (${artifact.size_bytes} bytes, sha256 ${artifact.sha256})` });
      await this.ctx.jobs.transition(this.jobId, 'succeeded', { result: finalMetrics, artifact, finished_at: now, error: null });
      await this.cleanRun();
      this.log.info({ artifact }, 'job succeeded');
      return 'succeeded';
    }
    const pruned = state === RunState.CANCELLED && this.reporter.stopping;
    const ended = pruned ? 'run ended: stopped by the pruner' : `run ended: ${RunState[state]}${code ? ` (${code}: ${message})` : ''}`;
    await this.ctx.jobs.appendWorkerEvent(this.jobId, seq, { type: 'log', level: state === RunState.CANCELLED ? 'info' : 'error', message: ended });
    // A run that did not succeed is cleaned from the worker too (only successes were, and a failed
    // run's files stayed on the worker's disk); a retry starts a new run, resuming from the
    // checkpoint already in the artifact store.
    await this.cleanRun();
    if (state === RunState.CANCELLED) {
      if (pruned && (await this.ctx.jobs.transition(this.jobId, 'pruned', { finished_at: now }, 'pruned', ['running'])).ok) {
        this.log.info('trial pruned');
        return 'pruned';
      }
      await this.ctx.jobs.transition(this.jobId, 'cancelled', { finished_at: now });
      this.log.info('job cancelled');
      return 'cancelled';
    }
    if (retryable) throw new RetryableFailure(code || 'worker_crashed', message || 'the training process died');
    throw new JobFailure(code || 'training_failed', message);
  }

  /**
   * Deletes the finished run on the worker. Its process may still be exiting after its final event
   * (the worker then refuses with FAILED_PRECONDITION): asked again for a few seconds, then left to
   * the worker's own retention.
   */
  private async cleanRun(): Promise<void> {
    for (let i = 0; i < 20; i++) {
      try {
        await this.client.deleteRun({ runId: this.jobId }, { timeoutMs: UNARY_MS });
        return;
      } catch (err) {
        if (!isGrpcError(err, GrpcStatus.FAILED_PRECONDITION)) return;
        await sleep(250, undefined, { signal: this.abort.signal }).catch(() => {});
      }
    }
  }
}
