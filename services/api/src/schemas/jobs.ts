import { Type, type Static } from 'typebox';
import { DATASET_ID_PATTERN, JOB_ID_PATTERN } from '@makam/shared/ids';
import { HyperparametersSchema } from '../contracts/hyperparameters.gen.ts';
import { JOB_STATUSES } from '@makam/shared/job-state';
import { OBJECTIVE_METRICS, PRUNERS, SAMPLERS } from '@makam/shared/tuning/search';
import { Nullable, STREAM_ID_PATTERN } from './common.ts';

/**
 * Every hyperparameter a job accepts (each family takes a subset), generated with the worker's
 * dataclass and docs/hyperparameters.md from contracts/hyperparameters.json.
 */
export const Hyperparameters = HyperparametersSchema;
export type HyperparametersT = Static<typeof Hyperparameters>;

export const ModelRequest = Type.Object(
  {
    family: Type.Union([Type.Literal('encoder'), Type.Literal('decoder'), Type.Literal('scratch'), Type.Literal('tfidf')], {
      description: 'encoder: BERT-like; decoder: causal LM with LoRA; scratch: a transformer trained from zero; tfidf: TF-IDF + linear model',
    }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: '^[^\\u0000]+$', description: "encoder, decoder: a Hugging Face id ('org/name', from the worker's cache) or an absolute path under one of the model roots (MAKAM_MODEL_ROOTS)" })),
    config: Type.Optional(
      Type.Object(
        { model_type: Type.String({ pattern: '^[a-z0-9_-]+$', description: 'A transformers model type whose parameters the estimate counts: bert, roberta, xlm-roberta, llama, mistral, gpt2' }) },
        { additionalProperties: true, description: "encoder, decoder: an architecture config to build an untrained model from; only the type's known settings (hidden_size, num_hidden_layers, ...), each of its type" },
      ),
    ),
    tokenizer: Type.Optional(
      Type.Object(
        {
          vocab_size: Type.Optional(Type.Integer({ minimum: 100, maximum: 250_000, default: 2000 })),
          min_frequency: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
        },
        { additionalProperties: false, description: 'With config: a tokenizer trained on the training split' },
      ),
    ),
  },
  { additionalProperties: false },
);


// One searched hyperparameter. Which fields a type takes is checked in code, to name the field.
const ParamSpace = Type.Object(
  {
    type: Type.Enum(['int', 'float', 'categorical'], { description: 'int and float take low and high (and step, log); categorical takes choices' }),
    low: Type.Optional(Type.Number()),
    high: Type.Optional(Type.Number()),
    step: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    log: Type.Optional(Type.Boolean({ description: 'Sample on a log scale (low must be > 0)' })),
    // Unknown items: ajv's type coercion would turn a number choice into a string one.
    choices: Type.Optional(Type.Array(Type.Unknown({ description: 'A string, number or boolean' }), { minItems: 1, maxItems: 100 })),
  },
  { additionalProperties: false },
);

export const SearchRequest = Type.Object(
  {
    space: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), ParamSpace, { minProperties: 1, maxProperties: 32, description: 'The hyperparameters to search, each a range or a list of choices' }),
    objective: Type.Optional(
      Type.Object(
        {
          metric: Type.Enum([...OBJECTIVE_METRICS], { description: 'A validation metric of the best epoch (macro_f1)' }),
          direction: Type.Optional(Type.Enum(['maximize', 'minimize'], { description: 'minimize for validation_loss, maximize otherwise' })),
        },
        { additionalProperties: false },
      ),
    ),
    trials: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Trials to run (20); a grid runs each point once' })),
    parallelism: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'Trials at the same time, never more than the class has workers (2)' })),
    sampler: Type.Optional(Type.Enum([...SAMPLERS], { description: 'tpe, random or grid (tpe)' })),
    pruner: Type.Optional(
      Type.Union([
        Type.Enum([...PRUNERS]),
        Type.Object(
          {
            type: Type.Enum([...PRUNERS]),
            startup_trials: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'median: trials finished before any is pruned' })),
            warmup_epochs: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'median: epochs a trial runs before it can be pruned' })),
          },
          { additionalProperties: false },
        ),
      ], { description: 'Stops trials early on their per-epoch objective: median, successive_halving or none (median)' }),
    ),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: "The sampler's seed (0)" })),
  },
  { additionalProperties: false },
);
export type SearchRequestT = Static<typeof SearchRequest>;

export const TrainJobBody = Type.Object(
  {
    kind: Type.Enum(['finetune', 'tune'], { description: 'finetune: one training run; tune: an Optuna search whose trials are training runs' }),
    model: ModelRequest,
    dataset: Type.String({ pattern: DATASET_ID_PATTERN, description: 'The training dataset id' }),
    validation_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A validation dataset id; else a split is carved' })),
    test_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A test dataset id for the final evaluation; else one is carved when test_fraction > 0' })),
    unlabeled_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A text-only dataset id (rows without labels) for the masked-LM phase before fine-tuning; needs hyperparameters.mlm_epochs > 0 (encoder, scratch)' })),
    hyperparameters: Type.Optional(Hyperparameters),
    resource_class: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$', description: 'The class to run on; by default the smallest class whose memory fits the estimate' })),
    devices: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Devices of one worker to train on at once (DDP under torchrun); batch_size and the memory estimate are per device. Default 1' })),
    search: Type.Optional(SearchRequest),
  },
  { additionalProperties: false, title: 'Finetune or tune job' },
);
export type TrainJobBodyT = Static<typeof TrainJobBody>;

/** Finished jobs' models combined; model, datasets and data hyperparameters come from the members. */
export const EnsembleJobBody = Type.Object(
  {
    kind: Type.Literal('ensemble', { description: 'ensemble: finished jobs\' models combined on the splits they share' }),
    members: Type.Array(Type.String({ pattern: JOB_ID_PATTERN }), { minItems: 2, maxItems: 8, description: 'Finished finetune or trial jobs of this tenant, on the same datasets, labels and data hyperparameters (seed, fractions, text preparation); a refit member is fit on the validation probabilities of its first model, which its artifact keeps' }),
    method: Type.Optional(Type.Enum(['average', 'stack'], { description: 'average: probabilities averaged with weights fit on validation; stack: a logistic regression fit on validation (average)' })),
    resource_class: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$', description: 'The class to run on; by default the largest of its members\' classes' })),
  },
  { additionalProperties: false, title: 'Ensemble job' },
);
export type EnsembleJobBodyT = Static<typeof EnsembleJobBody>;

// oneOf with a discriminator (ajv's `discriminator` option): a refusal names the fields of the
// body's own kind, not those of the other kinds.
export const CreateJobBody = Type.Unsafe<TrainJobBodyT | EnsembleJobBodyT>({
  type: 'object',
  required: ['kind'],
  discriminator: { propertyName: 'kind' },
  oneOf: [TrainJobBody, EnsembleJobBody],
});
export type CreateJobBodyT = TrainJobBodyT | EnsembleJobBodyT;

export const JobIdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN, description: 'A job id (job_...)' }) }, { additionalProperties: false });

export const ListJobsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    after: Type.Optional(Type.String({ pattern: JOB_ID_PATTERN, description: 'next_cursor of the previous page' })),
    kind: Type.Optional(Type.Enum(['finetune', 'tune', 'trial', 'ensemble'], { description: "Only jobs of this kind (a tune job's trials are jobs of kind trial)" })),
  },
  { additionalProperties: false },
);

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: STREAM_ID_PATTERN, maxLength: 41, description: 'next_cursor of the previous page' })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
);

const Progress = Type.Object({
  epoch: Type.Integer(),
  step: Type.Integer(),
  total_steps: Type.Integer(),
  phase: Type.Optional(Type.String({ description: 'absent while fine-tuning; "mlm" in the masked-LM phase (its own epochs and steps, out of mlm_epochs), "refit" in the final refit on train + validation, "refit_mlm" in the refit\'s own masked-LM phase before it (its own epochs and steps, as "mlm")' })),
});
// A fine-tuning evaluation, or (phase "mlm") an epoch of the masked-LM phase with only mlm_loss.
const MetricPoint = Type.Object({
  epoch: Type.Integer(),
  step: Type.Integer(),
  phase: Type.Optional(Type.Literal('mlm')),
  mlm_loss: Type.Optional(Type.Number()),
  train_loss: Type.Optional(Type.Number()),
  validation_loss: Type.Optional(Type.Number()),
  accuracy: Type.Optional(Type.Number()),
  weighted_f1: Type.Optional(Type.Number()),
  macro_f1: Type.Optional(Type.Number()),
});

export const Job = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('job'),
    tenant: Type.String(),
    kind: Type.Enum(['finetune', 'tune', 'trial', 'ensemble']),
    status: Type.Enum([...JOB_STATUSES]),
    model: Type.Unknown(),
    dataset: Type.String(),
    validation_dataset: Nullable(Type.String()),
    test_dataset: Nullable(Type.String()),
    unlabeled_dataset: Type.Optional(Nullable(Type.String())),
    hyperparameters: Type.Unknown(),
    resource_class: Type.String(),
    devices: Type.Optional(Type.Integer({ description: 'Devices the job trains on (absent: 1)' })),
    estimate: Type.Unknown({ description: 'The training memory estimate that placed the job' }),
    progress: Nullable(Progress),
    metrics: Nullable(MetricPoint),
    result: Type.Unknown({ description: 'The final metrics of a succeeded job' }),
    artifact: Nullable(Type.Object({ sha256: Type.String(), size_bytes: Type.Integer() })),
    error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    attempts: Type.Integer(),
    worker: Nullable(Type.String()),
    cancel_requested: Type.Boolean(),
    search: Type.Optional(Type.Unknown({ description: 'tune: the search, defaults filled in' })),
    study: Type.Optional(Type.Unknown({ description: 'tune: trials complete, pruned, failed and running, and the best so far' })),
    best_trial: Type.Optional(Type.Unknown({ description: 'tune: the best trial (number, job_id, value, params) once done' })),
    importances: Type.Optional(Type.Unknown({ description: "tune: each searched parameter's importance (Optuna), once done" })),
    parent: Type.Optional(Nullable(Type.String({ description: 'trial: its tune job' }))),
    trial: Type.Optional(Type.Unknown({ description: 'trial: its number, parameters and state in the study' })),
    method: Type.Optional(Type.String({ description: 'ensemble: average or stack' })),
    members: Type.Optional(Type.Unknown({ description: 'ensemble: its member jobs (job_id, family, artifact, model, hyperparameters)' })),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    finished_at: Nullable(Type.String()),
    updated_at: Type.String(),
  },
  { $id: 'Job' },
);

export const JobList = Type.Object({ object: Type.Literal('list'), data: Type.Array(Job), next_cursor: Nullable(Type.String()) });

export const MetricSeries = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Intersect([MetricPoint, Type.Object({ attempt: Type.Integer() })])),
});

export const EventList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Object({ id: Type.String(), created_at: Type.String(), type: Type.String(), data: Type.Unknown() })),
  next_cursor: Nullable(Type.String()),
});

export const TrialList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      number: Type.Integer(),
      job_id: Type.String(),
      status: Type.Enum([...JOB_STATUSES]),
      state: Type.Enum(['running', 'complete', 'pruned', 'fail']),
      params: Type.Unknown(),
      value: Nullable(Type.Number()),
      intermediate_values: Type.Array(Type.Object({ epoch: Type.Integer(), value: Type.Number() })),
      result: Type.Unknown({ description: 'The final metrics of a complete trial' }),
      error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
      attempts: Type.Integer(),
      started_at: Nullable(Type.String()),
      finished_at: Nullable(Type.String()),
    }),
  ),
});
