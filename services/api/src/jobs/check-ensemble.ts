// What makes finished jobs an ensemble: each is the tenant's own succeeded finetune or trial job with
// a model, none listed twice, none refit without its first model's validation probabilities, and all trained on the same
// datasets with the same data hyperparameters (DATA_HYPERPARAMETERS, from the contract), so the
// ensemble's run carves the very splits every member was measured on. Each refusal names the member.
// It runs on the largest of its members' classes (GPU classes first, then by memory).
import type { EnsembleMember, JobRecord, MemoryEstimate } from '@makam/shared/job-store';
import { DATA_HYPERPARAMETERS } from '../contracts/hyperparameters.gen.ts';
import type { ResourceClass } from '../placement/resource-classes.ts';
import { ApiError } from '../errors.ts';

/** What an ensemble job takes from its members. */
export interface CheckedEnsemble {
  members: EnsembleMember[];
  dataset: string;
  validation_dataset: string | null;
  test_dataset: string | null;
  /** The data hyperparameters the members share. */
  hyperparameters: Record<string, unknown>;
  resource_class: string;
  estimate: MemoryEstimate | null;
}

const param = (i: number) => `members.${i}`;
const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));

/** Refuses a duplicate before any record is read. */
export function checkMemberIds(ids: readonly string[]): void {
  ids.forEach((id, i) => {
    const first = ids.indexOf(id);
    if (first !== i) throw new ApiError(400, 'invalid_request', `members.${i} repeats ${id} (members.${first}); list each job once`, param(i));
  });
}

/**
 * The members' records (in request order, null where missing) checked as an ensemble of `tenant`;
 * placed on the largest of their classes, or on `pinned` when it is given and holds the largest
 * member's estimate (a training estimate: it bounds that member's inference, and so every member's).
 */
export function checkEnsemble(tenant: string, ids: readonly string[], records: ReadonlyArray<JobRecord | null>, classes: readonly ResourceClass[], pinned?: string): CheckedEnsemble {
  const members: EnsembleMember[] = [];
  const jobs: JobRecord[] = [];
  records.forEach((job, i) => {
    const id = ids[i]!;
    if (!job || job.tenant !== tenant) throw new ApiError(400, 'job_not_found', `members.${i}: no job with id ${id}`, param(i));
    if (job.kind !== 'finetune' && job.kind !== 'trial') {
      const hint = job.kind === 'tune' ? `; ensemble its best trial (best_trial.job_id) instead` : '';
      throw new ApiError(400, 'invalid_member', `members.${i}: ${id} is a ${job.kind} job; an ensemble combines finetune or trial jobs${hint}`, param(i));
    }
    if (job.status !== 'succeeded' || !job.artifact) {
      throw new ApiError(409, 'member_not_finished', `members.${i}: ${id} is ${job.status}; an ensemble takes jobs that succeeded, so wait for it or choose another`, param(i));
    }
    const result = job.result ?? {};
    // A refit member keeps its first model's validation probabilities (the worker's refit.py) for the
    // ensemble to fit on; one refit before makam kept them would fit it to texts it learnt.
    const refit = result.refit as { validation_probabilities?: unknown } | null | undefined;
    if (refit && !refit.validation_probabilities) {
      throw new ApiError(400, 'invalid_member', `members.${i}: ${id} was refit on train + validation (refit) and keeps no validation probabilities of its first model (it finished before makam kept them), so its own validation predictions would fit the ensemble to texts it learnt; train it again, or with "refit": false`, param(i));
    }
    jobs.push(job);
    members.push({ job_id: id, family: job.model.family, artifact: job.artifact, model: job.model, hyperparameters: job.hyperparameters });
  });

  const [first] = jobs;
  jobs.forEach((job, i) => {
    if (i === 0) return;
    for (const field of ['dataset', 'validation_dataset', 'test_dataset'] as const) {
      if (job[field] !== first![field]) {
        throw new ApiError(400, 'member_mismatch', `members.${i}: ${job.id} has ${field} ${show(job[field])}, members.0 (${first!.id}) ${show(first![field])}; every member must be trained on the same datasets`, param(i));
      }
    }
    for (const name of DATA_HYPERPARAMETERS) {
      const mine = job.hyperparameters[name];
      const theirs = first!.hyperparameters[name];
      if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
        throw new ApiError(400, 'member_mismatch', `members.${i}: ${job.id} has hyperparameters.${name} ${show(mine)}, members.0 (${first!.id}) ${show(theirs)}; the data hyperparameters (${DATA_HYPERPARAMETERS.join(', ')}) decide the splits and the text preparation, so every member must share them`, param(i));
      }
    }
    const labels = (j: JobRecord) => JSON.stringify(((j.result?.test as { confusion_matrix?: { labels?: unknown } } | undefined)?.confusion_matrix?.labels) ?? null);
    if (labels(job) !== labels(first!)) {
      throw new ApiError(400, 'member_mismatch', `members.${i}: ${job.id} has labels ${labels(job)}, members.0 (${first!.id}) ${labels(first!)}; every member must classify the same labels`, param(i));
    }
  });

  const memory = (name: string) => classes.find((c) => c.name === name)?.memory_bytes ?? 0;
  // A GPU class outranks any CPU class: a member placed on a GPU predicts on one too.
  const rank = (name: string) => [classes.find((c) => c.name === name)?.device === 'cuda' ? 1 : 0, memory(name)] as const;
  const larger = (x: string, y: string) => rank(x)[0] - rank(y)[0] || rank(x)[1] - rank(y)[1];
  const largest = jobs.reduce((a, b) => (larger(b.resource_class, a.resource_class) > 0 ? b : a));
  const estimate = jobs.reduce<MemoryEstimate | null>((a, b) => ((b.estimate?.total_bytes ?? 0) > (a?.total_bytes ?? 0) ? b.estimate : a), null);
  let resource_class = largest.resource_class;
  if (pinned !== undefined) {
    const cls = classes.find((c) => c.name === pinned);
    if (!cls) throw new ApiError(400, 'does_not_fit', `resource_class '${pinned}' is not one of ${classes.map((c) => c.name).join(', ')}`, 'resource_class');
    if (memory(pinned) < (estimate?.total_bytes ?? 0)) {
      throw new ApiError(400, 'does_not_fit', `resource_class '${pinned}' is smaller than the largest member's estimate (${estimate!.total_bytes} bytes); use ${largest.resource_class} or leave resource_class out`, 'resource_class');
    }
    resource_class = pinned;
  }
  const hyperparameters = Object.fromEntries(DATA_HYPERPARAMETERS.filter((n) => first!.hyperparameters[n] !== undefined).map((n) => [n, first!.hyperparameters[n]]));
  return { members, dataset: first!.dataset, validation_dataset: first!.validation_dataset, test_dataset: first!.test_dataset ?? null, hyperparameters, resource_class, estimate };
}
