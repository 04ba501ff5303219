import { Type, type Static } from 'typebox';
import { DATASET_ID_PATTERN, JOB_ID_PATTERN, JOB_STATUSES } from '@makam/shared';
import { Nullable } from './common.ts';

/** Hyperparameters of a finetune job; every one has a documented default. */
export const Hyperparameters = Type.Object(
  {
    epochs: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'Passes over the training split' }),
    batch_size: Type.Integer({ minimum: 1, maximum: 1024, default: 16, description: 'Examples per optimizer step' }),
    learning_rate: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 5e-5, description: 'Peak AdamW learning rate' }),
    max_length: Type.Integer({ minimum: 8, maximum: 512, default: 128, description: 'Tokens per text; longer texts are truncated' }),
    seed: Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 42, description: 'Seeds the split, initialisation and shuffling' }),
    warmup_ratio: Type.Number({ minimum: 0, maximum: 0.5, default: 0.1, description: 'Share of steps with a linear warmup' }),
    weight_decay: Type.Number({ minimum: 0, maximum: 1, default: 0.01, description: 'AdamW weight decay (not on biases and LayerNorm)' }),
    max_grad_norm: Type.Number({ exclusiveMinimum: 0, maximum: 1000, default: 1.0, description: 'Gradient clipping norm' }),
    validation_fraction: Type.Number({ exclusiveMinimum: 0, maximum: 0.5, default: 0.1, description: 'Share carved (stratified, seeded) for validation when no validation_dataset is given' }),
  },
  { additionalProperties: false },
);
export type HyperparametersT = Static<typeof Hyperparameters>;

export const ModelRequest = Type.Object(
  {
    family: Type.Literal('encoder', { description: 'The model family; encoder: BERT-like models' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'A Hugging Face id or a local path on the worker' })),
    config: Type.Optional(
      Type.Object(
        { model_type: Type.String({ pattern: '^[a-z0-9_-]+$', description: 'A transformers model type, such as bert' }) },
        { additionalProperties: true, description: 'An architecture config to build an untrained model from' },
      ),
    ),
    tokenizer: Type.Optional(
      Type.Object(
        { vocab_size: Type.Integer({ minimum: 100, maximum: 250_000, default: 2000 }) },
        { additionalProperties: false, description: 'A WordPiece tokenizer trained on the training split (with config)' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const CreateJobBody = Type.Object(
  {
    kind: Type.Literal('finetune'),
    model: ModelRequest,
    dataset: Type.String({ pattern: DATASET_ID_PATTERN, description: 'The training dataset id' }),
    validation_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A validation dataset id; else a split is carved' })),
    hyperparameters: Type.Optional(Hyperparameters),
    resource_class: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$', description: 'The queue to run on; defaults to the configured class' })),
  },
  { additionalProperties: false },
);
export type CreateJobBodyT = Static<typeof CreateJobBody>;

export const JobIdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN, description: 'A job id (job_...)' }) }, { additionalProperties: false });

export const ListJobsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    after: Type.Optional(Type.String({ pattern: JOB_ID_PATTERN, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^[0-9]+-[0-9]+$', description: 'next_cursor of the previous page' })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
);

const Progress = Type.Object({ epoch: Type.Integer(), step: Type.Integer(), total_steps: Type.Integer() });
const MetricPoint = Type.Object({
  epoch: Type.Integer(),
  step: Type.Integer(),
  train_loss: Type.Number(),
  validation_loss: Type.Number(),
  accuracy: Type.Number(),
  weighted_f1: Type.Number(),
  macro_f1: Type.Number(),
});

export const Job = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('job'),
    kind: Type.Literal('finetune'),
    status: Type.Enum([...JOB_STATUSES]),
    model: Type.Unknown(),
    dataset: Type.String(),
    validation_dataset: Nullable(Type.String()),
    hyperparameters: Type.Unknown(),
    resource_class: Type.String(),
    progress: Nullable(Progress),
    metrics: Nullable(MetricPoint),
    result: Type.Unknown({ description: 'The final metrics of a succeeded job' }),
    artifact: Nullable(Type.Object({ sha256: Type.String(), size_bytes: Type.Integer() })),
    error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    attempts: Type.Integer(),
    worker: Nullable(Type.String()),
    cancel_requested: Type.Boolean(),
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
