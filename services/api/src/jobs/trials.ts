// A tune job's trials as GET /v1/jobs/:id/trials answers them: each trial job with its
// parameters, state, per-epoch objective and final metrics.
import { objectiveValue } from '@makam/shared/tuning/search';
import type { JobRecord, JobStore } from '@makam/shared/job-store';
import { ApiError } from '../errors.ts';

export async function listTrials(jobs: Pick<JobStore, 'trials' | 'metrics'>, job: JobRecord) {
  if (job.kind !== 'tune') throw new ApiError(400, 'not_a_tune_job', `the job is a ${job.kind} job; only tune jobs have trials`, 'id');
  const metric = job.search.objective.metric;
  const trials = await jobs.trials(job.id);
  const data = await Promise.all(
    trials.map(async (t) => {
      const series = await jobs.metrics(t.id);
      const { trial } = t;
      return {
        number: trial.number,
        job_id: t.id,
        status: t.status,
        state: trial.state,
        params: trial.params,
        value: trial.value ?? (t.status === 'succeeded' ? objectiveValue(t.result, metric) : null),
        intermediate_values: series.map((p) => ({ epoch: p.epoch, value: p[metric] })),
        result: t.result,
        error: t.error,
        attempts: t.attempts,
        started_at: t.started_at,
        finished_at: t.finished_at,
      };
    }),
  );
  return { object: 'list' as const, data };
}
