// The job status machine. Every status change in Redis goes through `transition`, which only
// moves a job along these edges, so a late message can never revive a finished job.

// pruned: a tune job's trial that its study's pruner stopped early.
export const JOB_STATUSES = ['queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled', 'pruned'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const EDGES: Record<JobStatus, readonly JobStatus[]> = {
  // failed: a job that cannot even start (its dataset is gone) fails from the queue.
  queued: ['running', 'cancelled', 'failed'],
  // queued: a worker fault sends the job back for another attempt.
  running: ['queued', 'cancelling', 'succeeded', 'failed', 'cancelled', 'pruned'],
  // A run can finish on its own before the cancel reaches it; the record says what happened.
  cancelling: ['cancelled', 'succeeded', 'failed'],
  succeeded: [],
  failed: [],
  cancelled: [],
  pruned: [],
};

export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'pruned'];

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return EDGES[from].includes(to);
}

/** The statuses a job may be in to move to `to`. */
export function sourcesOf(to: JobStatus): JobStatus[] {
  return JOB_STATUSES.filter((from) => canTransition(from, to));
}
