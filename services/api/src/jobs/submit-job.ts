// POST /v1/jobs as named steps: check the request (kind, model, hyperparameters, search), read
// its datasets, place it on a resource class, then, once per Idempotency-Key, reserve a place in
// the tenant's quota, create the record and enqueue it, undoing what was done when a step fails
// (queue-new-job.ts, which an ensemble's submission shares).
// The order of the steps is the order of the refusals a client sees, so it is kept as it was.
// Redis round trips are most of a request's cost (bench/api-profile.ts), so after the front door's
// one there are at most three: the datasets (none for records this process has read before:
// DatasetStore.recordOf), the reservation with the datasets' re-check, and the record with the
// queueing.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { queuedJob, type JobRecord } from '@makam/shared/job-store';
import { ModelConfigError } from '../placement/model-shapes.ts';
import { PlacementError, place, type Placement } from '../placement/resource-classes.ts';
import { appliesTo, defaultsFor, misapplied } from '../placement/hyperparameters.ts';
import { estimateMemory } from '../placement/memory-estimate.ts';
import { fingerprintOf } from '../tenancy/idempotency-store.ts';
import { newJobId } from '@makam/shared/ids';
import { Telemetry } from '@makam/shared/telemetry';
import type { DatasetRecord } from '@makam/shared/dataset-store';
import type { Family } from '../contracts/hyperparameters.gen.ts';
import type { Search } from '@makam/shared/tuning/search';
import { ApiError } from '../errors.ts';
import { withIdempotency } from '../idempotency.ts';
import type { CreateJobBodyT, TrainJobBodyT } from '../schemas/jobs.ts';
import { submitEnsemble } from './submit-ensemble.ts';
import { queueNewJob } from './queue-new-job.ts';
import { checkHyperparameters } from './check-hyperparameters.ts';
import { checkModel } from './check-model.ts';
import { checkSearch, largestCorner } from './check-search.ts';

export interface SubmitDeps {
  /** The app's services: config, datasets, jobs, quotas, queues, resource classes, idempotency. */
  app: FastifyInstance;
  /** The operator's model roots, parsed once at start (check-model.ts). */
  modelRoots: readonly string[];
}

export interface SubmitRequest {
  tenant: string;
  body: CreateJobBodyT;
  /** Read only after the body has passed its checks, so a bad body is refused before a bad header. */
  idempotencyKey: () => string | null;
  log: FastifyBaseLogger;
}

type DatasetParam = 'dataset' | 'validation_dataset' | 'test_dataset' | 'unlabeled_dataset';
const DATASET_PARAMS = ['dataset', 'validation_dataset', 'test_dataset', 'unlabeled_dataset'] as const;

/** Submits a job; the answer is 202 with the queued job, or the stored answer of an earlier request with the same key. */
export async function submitJob(deps: SubmitDeps, req: SubmitRequest): Promise<{ status: number; body: unknown }> {
  if (req.body.kind === 'ensemble') return submitEnsemble(deps, { ...req, body: req.body });
  const { app } = deps;
  const { tenant } = req;
  const body = req.body;
  checkKind(body);
  checkModelRequest(body, deps.modelRoots);
  const { hyperparameters, search } = resolveHyperparameters(body);
  const train = await readDatasets(app, tenant, body, hyperparameters);
  const placement = placeJob(app, body, hyperparameters, search, train);
  await checkTracker(app, hyperparameters, placement.resource_class);
  const queue = (search ? app.tuneQueues : app.queues).get(placement.resource_class)!;
  const key = req.idempotencyKey();
  return withIdempotency(app, tenant, 'jobs', key, key ? fingerprintOf(body) : '', async () => {
    const id = newJobId();
    const job = newJobRecord(id, tenant, body, hyperparameters, placement, search);
    const datasets = DATASET_PARAMS.filter((param) => body[param]).map((param) => ({ key: app.keys.dataset(body[param]!), gone: () => datasetNotFound(body, param) }));
    await queueNewJob(app, tenant, { job, queue, tune: search !== undefined, datasets });
    return { status: 202, body: job };
  });
}

/** A tune job needs a search, and only a tune job takes one. */
function checkKind(body: TrainJobBodyT): void {
  if (body.kind === 'tune' && !body.search) throw new ApiError(400, 'invalid_request', "a tune job needs 'search': the space, objective and trials", 'search');
  if (body.kind === 'finetune' && body.search) throw new ApiError(400, 'invalid_request', "'search' belongs to tune jobs; set kind to 'tune' or drop search", 'search');
}

/** Encoder and decoder models are named or configured (exactly one); the other families take neither. */
function checkModelRequest(body: TrainJobBodyT, modelRoots: readonly string[]): void {
  const family = body.model.family;
  const { name, config, tokenizer } = body.model;
  if (family === 'encoder' || family === 'decoder') {
    if (Boolean(name) === Boolean(config)) {
      throw new ApiError(400, 'invalid_request', "give exactly one of 'model.name' (a Hugging Face id or worker path) and 'model.config' (an architecture to train from scratch)", 'model');
    }
    if (tokenizer && !config) throw new ApiError(400, 'invalid_request', "'model.tokenizer' trains a tokenizer for a 'model.config' model; a named model brings its own", 'model.tokenizer');
    checkModel(body.model, modelRoots);
  } else if (name || config || tokenizer) {
    const field = name ? 'name' : config ? 'config' : 'tokenizer';
    throw new ApiError(400, 'invalid_request', `family '${family}' takes no 'model.${field}': its ${family === 'scratch' ? 'architecture and tokenizer are hyperparameters (layers, heads, d_model, ff_dim, vocab_size, ...)' : 'features are hyperparameters (word_ngram_max, char_ngram_min, ...)'}`, `model.${field}`);
  }
}

/** The family's defaults under the given values, checked; a tune job's searched names are left to its trials. */
function resolveHyperparameters(body: TrainJobBodyT): { hyperparameters: Record<string, unknown>; search: Search | undefined } {
  const family = body.model.family;
  const given = (body.hyperparameters ?? {}) as Record<string, unknown>;
  const wrong = misapplied(given, family);
  if (wrong) {
    throw new ApiError(400, 'invalid_request', `hyperparameter '${wrong.name}' applies to ${wrong.families.join(', ')}, not to family '${family}'`, `hyperparameters.${wrong.name}`);
  }
  const hyperparameters = { ...defaultsFor(family), ...given };
  checkHyperparameters(family, hyperparameters);
  if (!body.search) return { hyperparameters, search: undefined };
  const search = checkSearch(family, body.search, given);
  // The best checkpoint of each trial is the one its objective rates best.
  if (appliesTo('metric_for_best_model', family) && given.metric_for_best_model === undefined) hyperparameters.metric_for_best_model = search.objective.metric;
  for (const name of Object.keys(search.space)) delete hyperparameters[name];
  return { hyperparameters, search };
}

/**
 * The job's datasets by parameter, or 400 dataset_not_found naming the first missing one in
 * parameter order (another tenant's is missing too). Read together: one round trip, not one each,
 * and none for records remembered (the reservation checks again that they still exist).
 */
async function ownedDatasets(app: FastifyInstance, tenant: string, body: TrainJobBodyT): Promise<Partial<Record<DatasetParam, DatasetRecord>>> {
  const given = DATASET_PARAMS.filter((param) => body[param]);
  const records = await Promise.all(given.map((param) => app.datasets.recordOf(body[param]!)));
  const datasets: Partial<Record<DatasetParam, DatasetRecord>> = {};
  given.forEach((param, i) => {
    const ds = records[i];
    if (!ds || ds.tenant !== tenant) throw datasetNotFound(body, param);
    datasets[param] = ds;
  });
  return datasets;
}

const datasetNotFound = (body: TrainJobBodyT, param: DatasetParam): ApiError =>
  new ApiError(400, 'dataset_not_found', `no dataset with id ${body[param]}; upload it with POST /v1/datasets first`, param);

/** Reads the job's datasets and checks the labels against the training set's; returns the training set. */
async function readDatasets(app: FastifyInstance, tenant: string, body: TrainJobBodyT, hyperparameters: Record<string, unknown>): Promise<DatasetRecord> {
  const datasets = await ownedDatasets(app, tenant, body);
  const train = datasets.dataset!;
  for (const param of ['dataset', 'validation_dataset', 'test_dataset'] as const) {
    if (datasets[param] && datasets[param].labels.length === 0) throw new ApiError(400, 'dataset_unlabeled', `${param} ${body[param]} is text-only (its rows have no labels); a classifier needs labelled rows here: give it as unlabeled_dataset (with mlm_epochs > 0) or upload one with a label per row`, param);
  }
  if (body.unlabeled_dataset) {
    const family = body.model.family;
    if (family !== 'encoder' && family !== 'scratch') throw new ApiError(400, 'invalid_request', `unlabeled_dataset feeds the masked-LM phase, which the ${family} family has not (encoder and scratch have it); drop unlabeled_dataset`, 'unlabeled_dataset');
    const searched = body.search && Object.hasOwn(body.search.space ?? {}, 'mlm_epochs');
    if (!searched && !(Number(hyperparameters.mlm_epochs) > 0)) throw new ApiError(400, 'invalid_request', 'unlabeled_dataset is read only by the masked-LM phase, which is off (hyperparameters.mlm_epochs is 0): set mlm_epochs to 1 or more, or drop unlabeled_dataset', 'unlabeled_dataset');
  }
  for (const param of ['validation_dataset', 'test_dataset'] as const) {
    const unseen = datasets[param]?.labels.filter((l) => !train.labels.includes(l)) ?? [];
    if (unseen.length > 0) throw new ApiError(400, 'label_not_in_training', `${param} labels missing from the training dataset: ${unseen.join(', ')}`, param);
  }
  for (const param of ['focal_alpha', 'class_weights'] as const) {
    const weights = hyperparameters[param];
    if (weights && typeof weights === 'object') {
      const unknown = Object.keys(weights).filter((l) => !train.labels.includes(l));
      if (unknown.length) throw new ApiError(400, 'invalid_request', `${param} names labels the dataset does not have: ${unknown.join(', ')}; its labels: ${train.labels.join(', ')}`, `hyperparameters.${param}`);
    }
  }
  return train;
}

/** The resource class the job fits (a tune job: its largest trial), or 400 does_not_fit / invalid_model_config. */
function placeJob(app: FastifyInstance, body: TrainJobBodyT, hyperparameters: Record<string, unknown>, search: Search | undefined, train: DatasetRecord): Placement {
  const family: Family = body.model.family;
  try {
    const input = { family, model: body.model, hyperparameters, labels: train.labels.length, rows: train.rows, datasetBytes: train.size_bytes };
    if (search) input.hyperparameters = largestCorner(search.space, { ...defaultsFor(family), ...hyperparameters }, (hp) => estimateMemory({ ...input, hyperparameters: hp, cuda: true }).total_bytes);
    return place(input, app.resourceClasses, body.resource_class, body.devices ?? 1);
  } catch (err) {
    if (err instanceof PlacementError) throw new ApiError(400, 'does_not_fit', err.message, err.param ?? (body.resource_class ? 'resource_class' : 'hyperparameters'));
    if (err instanceof ModelConfigError) throw new ApiError(400, 'invalid_model_config', err.message, err.param);
    throw err;
  }
}

/**
 * tracker 'wandb' runs only where wandb imports (GetCapabilities lists versions.wandb there): refused
 * while every worker its class's dispatchers report lacks it. With none reported (all down, say) it
 * queues, and a worker without wandb fails the run before training as tracker_unavailable.
 */
async function checkTracker(app: FastifyInstance, hyperparameters: Record<string, unknown>, resourceClass: string): Promise<void> {
  if (hyperparameters.tracker !== 'wandb') return;
  const workers = (await new Telemetry(app.redis, app.config.MAKAM_REDIS_PREFIX).workers()).filter((w) => w.resource_class === resourceClass);
  if (workers.length > 0 && !workers.some((w) => w.versions.wandb)) {
    throw new ApiError(400, 'invalid_request', `tracker 'wandb' needs wandb on the worker, and no worker of resource class ${resourceClass} can import it; use tracker 'tensorboard' (event files in the artifact) or 'none', or ask the operator for wandb on these workers`, 'hyperparameters.tracker');
  }
}

/** The queued record of the job; a tune job's study starts empty. */
function newJobRecord(id: string, tenant: string, body: TrainJobBodyT, hyperparameters: Record<string, unknown>, placement: Placement, search: Search | undefined): JobRecord {
  const job = {
    id,
    tenant,
    model: body.model,
    dataset: body.dataset,
    validation_dataset: body.validation_dataset ?? null,
    test_dataset: body.test_dataset ?? null,
    ...(body.unlabeled_dataset ? { unlabeled_dataset: body.unlabeled_dataset } : {}),
    hyperparameters,
    resource_class: placement.resource_class,
    ...(body.devices && body.devices > 1 ? { devices: body.devices } : {}),
    estimate: placement.estimate,
  };
  // checkKind has matched kind and search: a tune job has one, a finetune job none.
  if (!search) return queuedJob({ ...job, kind: 'finetune' });
  return queuedJob({ ...job, kind: 'tune', search, study: { trials: search.trials, complete: 0, pruned: 0, failed: 0, running: 0, best: null }, best_trial: null, importances: null });
}
