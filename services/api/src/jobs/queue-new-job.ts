// The last steps of POST /v1/jobs, the same for every kind once its request is checked and its
// record made: 413 for an oversized record before anything changes, then one transaction and round
// trip that takes a place in the tenant's quota (with its datasets checked again), writes the record
// and queues it; a refused place writes no record and queues nothing (lua/createJob-8.lua). One
// path, so a fix to it (crash consistency, round trips, the log line) is a fix for all.
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { JobTooLargeError, encodeNewJob, refusalOf, type JobRecord } from '@makam/shared/job-store';
import { traceEnqueue } from '@makam/shared/tracing';
import { addJobWith, trainJobOptions, tuneJobOptions, type TrainJobData } from '@makam/shared/queues';
import { ApiError } from '../errors.ts';

/** A dataset record the job reads, and the refusal when it is gone by the time the place is taken. */
export interface ReservedDataset {
  key: string;
  gone: () => ApiError;
}

export interface NewJob {
  job: JobRecord;
  queue: Queue<TrainJobData>;
  /** A tune job goes to its class's tune queue with a coordinator's options. */
  tune: boolean;
  datasets: readonly ReservedDataset[];
}

/** Queues a checked job, or refuses it with 413, 429 or a dataset's `gone`, having changed nothing. */
export async function queueNewJob(app: FastifyInstance, tenant: string, { job, queue, tune, datasets }: NewJob): Promise<void> {
  const fields = encodeOr413(job); // before anything is sent: an oversized job changes nothing
  const limit = app.config.MAKAM_TENANT_MAX_ACTIVE_JOBS;
  const refused = refusalOf((await createAndEnqueue(app, tenant, job, fields, queue, tune, datasets))[0]);
  if (refused?.missing !== undefined) throw datasets[refused.missing]!.gone();
  if (refused) {
    throw new ApiError(429, 'too_many_active_jobs', `the tenant has ${refused.active} queued or running jobs, its limit is ${limit}; wait for one to finish or cancel one`, null);
  }
}

/** The record as createIn writes it, or 413 job_too_large. */
function encodeOr413(job: JobRecord): string[] {
  try {
    return encodeNewJob(job);
  } catch (err) {
    if (err instanceof JobTooLargeError) throw new ApiError(413, 'job_too_large', err.message, 'body');
    throw err;
  }
}

/**
 * Takes job `id`'s place in the tenant's active-job quota, checking in the same step that its
 * datasets are still there (a dataset deleted since the submission read it is caught here, and once
 * the place is taken its delete refuses: lua/removeDataset-5.lua), stores the record (encoded by
 * encodeOr413) and queues it: one transaction and round trip (addJobWith), whose replies it returns
 * (the first says whether the place was taken). When the transaction fails, how far it got is
 * unknown: a stored record is marked failed, never left queued with nothing in the queue, and its
 * place is given back.
 */
async function createAndEnqueue(app: FastifyInstance, tenant: string, job: JobRecord, fields: string[], queue: Queue<TrainJobData>, tune: boolean, datasets: readonly ReservedDataset[]): Promise<unknown[]> {
  const [name, opts] = tune ? ['tune', tuneJobOptions(job.id)] : ['train', trainJobOptions(job.id, app.config.MAKAM_JOB_ATTEMPTS)];
  const admission = { limit: app.config.MAKAM_TENANT_MAX_ACTIVE_JOBS, datasetKeys: datasets.map((d) => d.key), queueJobKey: queue.toKey(job.id) };
  try {
    // The enqueue span's context travels in the job's data to the dispatcher (no extra round trip; off, no field).
    return await traceEnqueue(queue.name, job.id, (trace) => addJobWith(queue, app.submitConnection, name, { jobId: job.id, trace }, opts, (multi) => app.jobs.createIn(multi, app.submitConnection, job, fields, admission)));
  } catch (err) {
    const failed = await app.jobs.transition(job.id, 'failed', { error: { code: 'enqueue_failed', message: 'the job could not be queued' }, finished_at: new Date().toISOString() }).catch(() => null);
    if (failed && failed.from === null) await app.quotas.releaseActiveJob(tenant, job.id).catch(() => undefined);
    throw err;
  }
}
