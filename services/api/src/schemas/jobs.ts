import { Type, type Static } from 'typebox';
import { DATASET_ID_PATTERN, JOB_ID_PATTERN, JOB_STATUSES, OBJECTIVE_METRICS, PRUNERS, SAMPLERS } from '@makam/shared';
import { Nullable, STREAM_ID_PATTERN } from './common.ts';

const LabelWeights = Type.Record(Type.String({ minLength: 1 }), Type.Number({ minimum: 0, maximum: 1000 }), { description: 'A weight per label name' });

/**
 * Every hyperparameter a job accepts (each family takes a subset; see HYPERPARAMETERS in
 * services/shared/src/placement/hyperparameters.ts for which and for the per-family defaults).
 */
export const Hyperparameters = Type.Object(
  {
    // Data, every family.
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'Seeds the splits, initialisation and shuffling (42)' })),
    validation_fraction: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 0.5, description: 'Share carved (stratified, seeded) for validation when no validation_dataset is given (0.1)' })),
    test_fraction: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, description: 'Share carved for the final test when no test_dataset is given (0: none)' })),
    remove_eval_duplicates: Type.Optional(Type.Boolean({ description: 'Remove validation/test texts that also occur in training (true); leaks are reported either way' })),
    unicode_nfc: Type.Optional(Type.Boolean({ description: 'Unicode NFC normalisation (true)' })),
    lowercase: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('turkish')], { description: "Turkish-aware lowercasing (I→ı, İ→i): 'turkish' for scratch and tfidf, 'none' for encoder and decoder" })),
    unescape_newlines: Type.Optional(Type.Boolean({ description: 'Turn literal \\r\\n, \\n, \\t escapes into real characters (true)' })),
    drop_chord_lines: Type.Optional(Type.Boolean({ description: 'Drop lines made only of chord names such as Am Dm G/B (false)' })),
    // Training, neural families.
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Passes over the training split (3)' })),
    batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'Examples per forward pass (16); the effective batch is batch_size × gradient_accumulation_steps' })),
    learning_rate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Peak learning rate (encoder 5e-5, decoder 1e-4, scratch 5e-4)' })),
    max_length: Type.Optional(Type.Integer({ minimum: 8, maximum: 512, description: 'Tokens per text (encoder 128, decoder and scratch 256)' })),
    warmup_ratio: Type.Optional(Type.Number({ minimum: 0, maximum: 0.5, description: 'Share of steps with linear warmup (0.1)' })),
    warmup_steps: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'Warmup steps; overrides warmup_ratio when > 0 (0)' })),
    lr_scheduler: Type.Optional(Type.Union([Type.Literal('linear'), Type.Literal('cosine'), Type.Literal('constant')], { description: 'Decay after warmup (linear)' })),
    weight_decay: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'AdamW weight decay, never on biases and norms (0.01)' })),
    max_grad_norm: Type.Optional(Type.Number({ minimum: 0, maximum: 1000, description: 'Gradient clipping norm; 0 disables (1.0)' })),
    gradient_accumulation_steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Micro-batches per optimizer step (1)' })),
    precision: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('fp32'), Type.Literal('bf16'), Type.Literal('fp16')], { description: "auto: bf16 on CUDA that supports it, else fp32; fp16 uses a gradient scaler (auto)" })),
    label_smoothing: Type.Optional(Type.Number({ minimum: 0, maximum: 0.99, description: 'Label smoothing (0)' })),
    loss: Type.Optional(Type.Union([Type.Literal('cross_entropy'), Type.Literal('focal')], { description: 'cross_entropy or focal (cross_entropy)' })),
    focal_gamma: Type.Optional(Type.Number({ minimum: 0, maximum: 10, description: 'Focal loss gamma (2.0)' })),
    focal_alpha: Type.Optional(Nullable(LabelWeights)),
    class_weights: Type.Optional(Nullable(Type.Union([Type.Literal('balanced'), LabelWeights]))),
    early_stopping_patience: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Epochs without improvement before stopping; 0 disables (0)' })),
    metric_for_best_model: Type.Optional(Type.Union(['macro_f1', 'accuracy', 'weighted_f1', 'validation_loss'].map((m) => Type.Literal(m)) as never, { description: 'Picks the best checkpoint and drives early stopping (macro_f1)' })),
    truncation: Type.Optional(Type.Union([Type.Literal('head'), Type.Literal('tail'), Type.Literal('head+tail')], { description: 'Which tokens of a long text to keep (head)' })),
    gradient_checkpointing: Type.Optional(Type.Boolean({ description: 'Recompute activations in backward to save memory (false)' })),
    // LoRA, decoder.
    lora_r: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'LoRA rank (16)' })),
    lora_alpha: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 4096, description: 'LoRA alpha (32)' })),
    lora_dropout: Type.Optional(Type.Number({ minimum: 0, maximum: 0.9, description: 'LoRA dropout (0.05)' })),
    lora_target_modules: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.]+$' }), { minItems: 1, maxItems: 64, description: 'Modules LoRA adapts (q_proj, k_proj, v_proj, o_proj)' })),
    load_in_4bit: Type.Optional(Type.Boolean({ description: '4-bit QLoRA; needs bitsandbytes on the worker (false)' })),
    export: Type.Optional(Type.Union([Type.Literal('adapter'), Type.Literal('merged')], { description: 'The LoRA adapter or the merged model (adapter)' })),
    // The from-scratch transformer.
    layers: Type.Optional(Type.Integer({ minimum: 1, maximum: 48, description: 'Transformer blocks (4)' })),
    heads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'Attention heads; must divide d_model (4)' })),
    d_model: Type.Optional(Type.Integer({ minimum: 16, maximum: 4096, description: 'Model width (256)' })),
    ff_dim: Type.Optional(Type.Integer({ minimum: 16, maximum: 16384, description: 'Feed-forward width (1024)' })),
    dropout: Type.Optional(Type.Number({ minimum: 0, maximum: 0.9, description: 'Dropout (0.1)' })),
    vocab_size: Type.Optional(Type.Integer({ minimum: 100, maximum: 250_000, description: 'SentencePiece vocabulary size (8000)' })),
    tokenizer_model: Type.Optional(Type.Union([Type.Literal('bpe'), Type.Literal('unigram')], { description: 'SentencePiece model type (bpe)' })),
    pooling: Type.Optional(Type.Union([Type.Literal('mean'), Type.Literal('cls')], { description: 'How a text becomes one vector (mean)' })),
    // TF-IDF.
    word_ngram_max: Type.Optional(Type.Integer({ minimum: 1, maximum: 5, description: 'Word n-grams 1..n (2)' })),
    char_ngram_min: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'Shortest character n-gram (2)' })),
    char_ngram_max: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'Longest character n-gram (5)' })),
    C: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1e6, description: 'Inverse regularisation strength (1.0)' })),
    classifier: Type.Optional(Type.Union([Type.Literal('linear_svc'), Type.Literal('logreg')], { description: 'LinearSVC or logistic regression (linear_svc)' })),
    max_features: Type.Optional(Nullable(Type.Integer({ minimum: 100, maximum: 100_000_000 }))),
  },
  { additionalProperties: false },
);
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

export const CreateJobBody = Type.Object(
  {
    kind: Type.Enum(['finetune', 'tune'], { description: 'finetune: one training run; tune: an Optuna search whose trials are training runs' }),
    model: ModelRequest,
    dataset: Type.String({ pattern: DATASET_ID_PATTERN, description: 'The training dataset id' }),
    validation_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A validation dataset id; else a split is carved' })),
    test_dataset: Type.Optional(Type.String({ pattern: DATASET_ID_PATTERN, description: 'A test dataset id for the final evaluation; else one is carved when test_fraction > 0' })),
    hyperparameters: Type.Optional(Hyperparameters),
    resource_class: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$', description: 'The class to run on; by default the smallest class whose memory fits the estimate' })),
    search: Type.Optional(SearchRequest),
  },
  { additionalProperties: false },
);
export type CreateJobBodyT = Static<typeof CreateJobBody>;

export const JobIdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN, description: 'A job id (job_...)' }) }, { additionalProperties: false });

export const ListJobsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    after: Type.Optional(Type.String({ pattern: JOB_ID_PATTERN, description: 'next_cursor of the previous page' })),
    kind: Type.Optional(Type.Enum(['finetune', 'tune', 'trial'], { description: "Only jobs of this kind (a tune job's trials are jobs of kind trial)" })),
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
    tenant: Type.String(),
    kind: Type.Enum(['finetune', 'tune', 'trial']),
    status: Type.Enum([...JOB_STATUSES]),
    model: Type.Unknown(),
    dataset: Type.String(),
    validation_dataset: Nullable(Type.String()),
    test_dataset: Nullable(Type.String()),
    hyperparameters: Type.Unknown(),
    resource_class: Type.String(),
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
