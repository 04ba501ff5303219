// POST /v1/jobs with kind "ensemble": the members checked (check-ensemble.ts), their datasets still
// the tenant's, then, once per Idempotency-Key, the steps every kind shares (queue-new-job.ts): 413
// before a quota place, the place with the datasets checked again, the record and the queue of the
// class it runs on in one transaction. The dispatcher sends the members' models to the worker
// (transfers.ts) and the run follows a finetune job's path.
import { queuedJob } from '@makam/shared/job-store';
import { newJobId } from '@makam/shared/ids';
import { fingerprintOf } from '../tenancy/idempotency-store.ts';
import { ApiError } from '../errors.ts';
import { withIdempotency } from '../idempotency.ts';
import type { EnsembleJobBodyT } from '../schemas/jobs.ts';
import { checkEnsemble, checkMemberIds, type CheckedEnsemble } from './check-ensemble.ts';
import { queueNewJob } from './queue-new-job.ts';
import type { SubmitDeps, SubmitRequest } from './submit-job.ts';

export async function submitEnsemble(deps: SubmitDeps, req: Omit<SubmitRequest, 'body'> & { body: EnsembleJobBodyT }): Promise<{ status: number; body: unknown }> {
  const { app } = deps;
  const { tenant, body } = req;
  checkMemberIds(body.members);
  const records = await Promise.all(body.members.map((id) => app.jobs.get(id)));
  const checked = checkEnsemble(tenant, body.members, records, app.resourceClasses, body.resource_class);
  const datasets = await checkDatasets(deps, tenant, checked);
  const key = req.idempotencyKey();
  return withIdempotency(app, tenant, 'jobs', key, key ? fingerprintOf(body) : '', async () => {
    const job = queuedJob({
      id: newJobId(),
      tenant,
      kind: 'ensemble',
      method: body.method ?? 'average',
      members: checked.members,
      model: { family: 'ensemble' },
      dataset: checked.dataset,
      validation_dataset: checked.validation_dataset,
      test_dataset: checked.test_dataset,
      hyperparameters: checked.hyperparameters,
      resource_class: checked.resource_class,
      estimate: checked.estimate,
    });
    // The route's one log line names the job (routes/jobs/index.ts), as for every kind.
    const queue = app.queues.get(checked.resource_class)!;
    await queueNewJob(app, tenant, { job, queue, tune: false, datasets: datasets.map((id) => ({ key: app.keys.dataset(id), gone: () => datasetGone(id) })) });
    return { status: 202, body: job };
  });
}

const datasetGone = (id: string): ApiError =>
  new ApiError(400, 'dataset_not_found', `the members' dataset ${id} is gone; an ensemble carves the members' splits again from their datasets`, 'members');

/**
 * The members' datasets, each still the tenant's (a deleted one answers 400 naming the members).
 * Read once here; the quota reservation checks again that they are still there.
 */
async function checkDatasets(deps: SubmitDeps, tenant: string, checked: CheckedEnsemble): Promise<string[]> {
  const ids = [checked.dataset, checked.validation_dataset, checked.test_dataset].filter((d): d is string => Boolean(d));
  const records = await Promise.all(ids.map((d) => deps.app.datasets.recordOf(d)));
  records.forEach((ds, i) => {
    if (!ds || ds.tenant !== tenant) throw datasetGone(ids[i]!);
  });
  return ids;
}
