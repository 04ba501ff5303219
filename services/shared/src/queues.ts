import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';

/** The payload of a training job on a class's queue: the job record in Redis holds the rest. */
export interface TrainJobData {
  jobId: string;
}

export const queueName = (resourceClass: string): string => `train-${resourceClass}`;
/** Tune jobs wait here for a coordinator in a dispatcher of their class; their trials go to queueName. */
export const tuneQueueName = (resourceClass: string): string => `tune-${resourceClass}`;

// BullMQ's own entries of finished jobs (the job record in Redis is the one that counts): bounded
// by age and by count, so a busy queue cannot grow without end.
const KEEP_FINISHED = { removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 }, removeOnFail: { age: 30 * 24 * 3600, count: 50_000 } } satisfies JobsOptions;

/** A coordinator that dies is replaced by another that picks the study up where it was. */
export function tuneJobOptions(jobId: string): JobsOptions {
  return { jobId, attempts: 20, backoff: { type: 'exponential', delay: 2_000 }, ...KEEP_FINISHED };
}

/** Retries with backoff are for worker faults; bad jobs end with UnrecoverableError. */
export function trainJobOptions(jobId: string, attempts: number): JobsOptions {
  return {
    jobId,
    attempts,
    backoff: { type: 'exponential', delay: 2_000 },
    ...KEEP_FINISHED,
  };
}

export function createQueues(classes: string[], connection: ConnectionOptions, prefix: string, name = queueName): Map<string, Queue<TrainJobData>> {
  return new Map(classes.map((c) => [c, new Queue<TrainJobData>(name(c), { connection, prefix })]));
}
