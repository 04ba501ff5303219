// The hyperparameters a job accepts, which family each applies to, and their defaults. The
// Python worker applies the same table (workers-python/src/makam_worker/training/config.py);
// test/integration/hyperparameter-contract.test.ts checks the two agree.

export const FAMILIES = ['encoder', 'decoder', 'scratch', 'tfidf'] as const;
export type Family = (typeof FAMILIES)[number];
export const NEURAL: readonly Family[] = ['encoder', 'decoder', 'scratch'];

type Default = unknown | ((family: Family) => unknown);

interface Spec {
  families: readonly Family[];
  default: Default;
}

const ALL = FAMILIES;
const TRANSFORMERS: readonly Family[] = ['encoder', 'decoder'];

/** Every hyperparameter: the families it applies to and its default (per family where it differs). */
export const HYPERPARAMETERS: Record<string, Spec> = {
  // Data: every family.
  seed: { families: ALL, default: 42 },
  validation_fraction: { families: ALL, default: 0.1 },
  test_fraction: { families: ALL, default: 0 },
  remove_eval_duplicates: { families: ALL, default: true },
  unicode_nfc: { families: ALL, default: true },
  lowercase: { families: ALL, default: (f: Family) => (f === 'scratch' || f === 'tfidf' ? 'turkish' : 'none') },
  unescape_newlines: { families: ALL, default: true },
  drop_chord_lines: { families: ALL, default: false },
  // Training: the neural families.
  epochs: { families: NEURAL, default: 3 },
  batch_size: { families: NEURAL, default: 16 },
  learning_rate: { families: NEURAL, default: (f: Family) => ({ encoder: 5e-5, decoder: 1e-4, scratch: 5e-4 })[f as 'encoder'] },
  max_length: { families: NEURAL, default: (f: Family) => (f === 'encoder' ? 128 : 256) },
  warmup_ratio: { families: NEURAL, default: 0.1 },
  warmup_steps: { families: NEURAL, default: 0 },
  lr_scheduler: { families: NEURAL, default: 'linear' },
  weight_decay: { families: NEURAL, default: 0.01 },
  max_grad_norm: { families: NEURAL, default: 1.0 },
  gradient_accumulation_steps: { families: NEURAL, default: 1 },
  precision: { families: NEURAL, default: 'auto' },
  label_smoothing: { families: NEURAL, default: 0 },
  loss: { families: NEURAL, default: 'cross_entropy' },
  focal_gamma: { families: NEURAL, default: 2.0 },
  focal_alpha: { families: NEURAL, default: null },
  class_weights: { families: NEURAL, default: null },
  early_stopping_patience: { families: NEURAL, default: 0 },
  metric_for_best_model: { families: NEURAL, default: 'macro_f1' },
  truncation: { families: NEURAL, default: 'head' },
  gradient_checkpointing: { families: TRANSFORMERS, default: false },
  // LoRA: decoder.
  lora_r: { families: ['decoder'], default: 16 },
  lora_alpha: { families: ['decoder'], default: 32 },
  lora_dropout: { families: ['decoder'], default: 0.05 },
  lora_target_modules: { families: ['decoder'], default: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
  load_in_4bit: { families: ['decoder'], default: false },
  export: { families: ['decoder'], default: 'adapter' },
  // The from-scratch transformer.
  layers: { families: ['scratch'], default: 4 },
  heads: { families: ['scratch'], default: 4 },
  d_model: { families: ['scratch'], default: 256 },
  ff_dim: { families: ['scratch'], default: 1024 },
  dropout: { families: ['scratch'], default: 0.1 },
  vocab_size: { families: ['scratch'], default: 8000 },
  tokenizer_model: { families: ['scratch'], default: 'bpe' },
  pooling: { families: ['scratch'], default: 'mean' },
  // TF-IDF.
  word_ngram_max: { families: ['tfidf'], default: 2 },
  char_ngram_min: { families: ['tfidf'], default: 2 },
  char_ngram_max: { families: ['tfidf'], default: 5 },
  C: { families: ['tfidf'], default: 1.0 },
  classifier: { families: ['tfidf'], default: 'linear_svc' },
  max_features: { families: ['tfidf'], default: null },
};

export function appliesTo(name: string, family: Family): boolean {
  // Own keys only: a name like 'constructor' or 'toString' is unknown, not Object.prototype's.
  return Object.hasOwn(HYPERPARAMETERS, name) && HYPERPARAMETERS[name]!.families.includes(family);
}

/** The defaults of every hyperparameter that applies to `family`. */
export function defaultsFor(family: Family): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(HYPERPARAMETERS)) {
    if (!spec.families.includes(family)) continue;
    out[name] = typeof spec.default === 'function' ? (spec.default as (f: Family) => unknown)(family) : structuredClone(spec.default);
  }
  return out;
}

/** The first given key that does not apply to `family`, with the families it does apply to. */
export function misapplied(given: Record<string, unknown>, family: Family): { name: string; families: readonly Family[] } | null {
  for (const name of Object.keys(given)) {
    if (!appliesTo(name, family)) return { name, families: Object.hasOwn(HYPERPARAMETERS, name) ? HYPERPARAMETERS[name]!.families : [] };
  }
  return null;
}
