// POST /v1/jobs with kind "ensemble": the members checked (check-ensemble.ts), their datasets still
// the tenant's, then, once per Idempotency-Key, a place in the tenant's quota, the record and the
// queue of the class it runs on, as a finetune job goes: the dispatcher sends the members' models to
// the worker (transfers.ts) and the run follows the same path.
import { JobTooLargeError, queuedJob } from '@makam/shared/job-store';
import { newJobId } from '@makam/shared/ids';
import { trainJobOptions } from '@makam/shared/queues';
import { traceEnqueue } from '@makam/shared/tracing';
import { fingerprintOf } from '../tenancy/idempotency-store.ts';
import { ApiError } from '../errors.ts';
import { withIdempotency } from '../idempotency.ts';
import type { EnsembleJobBodyT } from '../schemas/jobs.ts';
import { checkEnsemble, checkMemberIds, type CheckedEnsemble } from './check-ensemble.ts';
import type { SubmitDeps, SubmitRequest } from './submit-job.ts';

export async function submitEnsemble(deps: SubmitDeps, req: Omit<SubmitRequest, 'body'> & { body: EnsembleJobBodyT }): Promise<{ status: number; body: unknown }> {
  const { app } = deps;
  const { tenant, body } = req;
  checkMemberIds(body.members);
  const records = await Promise.all(body.members.map((id) => app.jobs.get(id)));
  const checked = checkEnsemble(tenant, body.members, records, app.resourceClasses, body.resource_class);
  await checkDatasets(deps, tenant, checked);
  const key = req.idempotencyKey();
  return withIdempotency(app, tenant, 'jobs', key, key ? fingerprintOf(body) : '', async () => {
    const id = newJobId();
    const limit = app.config.MAKAM_TENANT_MAX_ACTIVE_JOBS;
    if ((await app.quotas.reserveActiveJob(tenant, id, limit)) !== null) {
      throw new ApiError(429, 'too_many_active_jobs', `the tenant has ${limit} queued or running jobs, its limit; wait for one to finish or cancel one`, null);
    }
    const job = queuedJob({
      id,
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
    try {
      // Read again under the reservation: a dataset deleted since the first read is caught here,
      // and while the reservation stands its delete is refused.
      await checkDatasets(deps, tenant, checked);
      await app.jobs.create(job);
    } catch (err) {
      await app.quotas.releaseActiveJob(tenant, id).catch(() => undefined);
      if (err instanceof JobTooLargeError) throw new ApiError(413, 'job_too_large', err.message, 'body');
      throw err;
    }
    try {
      const queue = app.queues.get(checked.resource_class)!;
      await traceEnqueue(queue.name, id, (trace) => queue.add('train', { jobId: id, trace }, trainJobOptions(id, app.config.MAKAM_JOB_ATTEMPTS)));
    } catch (err) {
      await app.jobs.transition(id, 'failed', { error: { code: 'enqueue_failed', message: 'the job could not be queued' }, finished_at: new Date().toISOString() });
      throw err;
    }
    req.log.info({ jobId: id, resourceClass: checked.resource_class, members: body.members }, 'ensemble queued');
    return { status: 202, body: job };
  });
}

/** The members' datasets are still the tenant's (a deleted one answers 400 naming the members). */
async function checkDatasets(deps: SubmitDeps, tenant: string, checked: CheckedEnsemble): Promise<void> {
  const ids = [checked.dataset, checked.validation_dataset, checked.test_dataset].filter((d): d is string => Boolean(d));
  const records = await Promise.all(ids.map((d) => deps.app.datasets.get(d)));
  records.forEach((ds, i) => {
    if (!ds || ds.tenant !== tenant) throw new ApiError(400, 'dataset_not_found', `the members' dataset ${ids[i]} is gone; an ensemble carves the members' splits again from their datasets`, 'members');
  });
}
