// What the estimator needs to know of a model's architecture, for the models makam's users name,
// for config-built models, and for the from-scratch transformer.

export interface ModelShape {
  kind: 'encoder' | 'decoder';
  /** How parameters are laid out: BERT (also RoBERTa), LLaMA (also Mistral), GPT-2. */
  arch: 'bert' | 'llama' | 'gpt2';
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Width of one attention head (LLaMA's head_dim may differ from hidden / heads). */
  headDim: number;
  ff: number;
  /** Position embeddings (BERT, GPT-2); 0 for rotary. */
  positions: number;
  /** BERT's token type embeddings (type_vocab_size). */
  typeVocab: number;
  /** Biases on the attention and MLP projections (LLaMA's attention_bias, mlp_bias). */
  attentionBias: boolean;
  mlpBias: boolean;
  /** Where the shape came from: a known model, a config, or an assumption. */
  source: string;
}

const BERT_BASE = { kind: 'encoder', arch: 'bert', vocab: 30522, hidden: 768, layers: 12, heads: 12, kvHeads: 12, headDim: 64, ff: 3072, positions: 512, typeVocab: 2, attentionBias: true, mlpBias: true } as const;
const LLAMA_8B = { kind: 'decoder', arch: 'llama', vocab: 128256, hidden: 4096, layers: 32, heads: 32, kvHeads: 8, headDim: 128, ff: 14336, positions: 0, typeVocab: 0, attentionBias: false, mlpBias: false } as const;

/** Published configs (config.json on the Hugging Face hub) of the models the users' guide names. */
export const KNOWN_MODELS: Record<string, Omit<ModelShape, 'source'>> = {
  'dbmdz/bert-base-turkish-cased': { ...BERT_BASE, vocab: 32000 },
  'dbmdz/bert-base-turkish-uncased': { ...BERT_BASE, vocab: 32000 },
  'dbmdz/bert-base-turkish-128k-cased': { ...BERT_BASE, vocab: 128000 },
  'bert-base-multilingual-cased': { ...BERT_BASE, vocab: 119547 },
  'google-bert/bert-base-multilingual-cased': { ...BERT_BASE, vocab: 119547 },
  'bert-base-uncased': BERT_BASE,
  'xlm-roberta-base': { ...BERT_BASE, vocab: 250002, positions: 514, typeVocab: 1 },
  'FacebookAI/xlm-roberta-base': { ...BERT_BASE, vocab: 250002, positions: 514, typeVocab: 1 },
  'meta-llama/Llama-3.1-8B': LLAMA_8B,
  'meta-llama/Llama-3.1-8B-Instruct': LLAMA_8B,
  'meta-llama/Meta-Llama-3.1-8B': LLAMA_8B,
  'meta-llama/Meta-Llama-3.1-8B-Instruct': LLAMA_8B,
};

const INT_MAX = 2 ** 31 - 1;
type KeySpec =
  | { type: 'int'; min: number; nullable?: boolean }
  | { type: 'number'; min: number; max: number; nullable?: boolean }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] };

const int = (min = 1, nullable = false): KeySpec => ({ type: 'int', min, nullable });
const prob: KeySpec = { type: 'number', min: 0, max: 1 };
const positive: KeySpec = { type: 'number', min: Number.MIN_VALUE, max: 10 };
const ACTIVATIONS: KeySpec = { type: 'enum', values: ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'quick_gelu', 'relu', 'silu', 'swish', 'tanh', 'mish'] };

interface ConfigType {
  arch: 'bert' | 'llama' | 'gpt2';
  /** transformers' defaults for the size-bearing keys a config leaves out. */
  defaults: Record<string, number>;
  /** Every key makam accepts for the type; any other key is refused, since it could add parameters the estimate does not see. */
  keys: Record<string, KeySpec>;
  /** transformers' attribute_map: another name for a key. */
  aliases?: Record<string, string>;
}

const BERT: ConfigType = {
  arch: 'bert',
  defaults: { hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512, type_vocab_size: 2 },
  keys: {
    vocab_size: int(), hidden_size: int(), num_hidden_layers: int(), num_attention_heads: int(), intermediate_size: int(),
    max_position_embeddings: int(), type_vocab_size: int(),
    hidden_act: ACTIVATIONS, hidden_dropout_prob: prob, attention_probs_dropout_prob: prob, classifier_dropout: { ...prob, nullable: true },
    layer_norm_eps: positive, initializer_range: positive,
  },
};
const LLAMA_KEYS: Record<string, KeySpec> = {
  vocab_size: int(), hidden_size: int(), num_hidden_layers: int(), num_attention_heads: int(), num_key_value_heads: int(),
  intermediate_size: int(), head_dim: int(), max_position_embeddings: int(),
  hidden_act: ACTIVATIONS, attention_dropout: prob, rms_norm_eps: positive, initializer_range: positive,
};

/** The model types whose parameters the estimate counts exactly, by `model.config.model_type`. */
export const CONFIG_TYPES: Record<string, ConfigType> = {
  bert: BERT,
  roberta: BERT,
  'xlm-roberta': BERT,
  llama: { arch: 'llama', defaults: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, intermediate_size: 11008 }, keys: { ...LLAMA_KEYS, attention_bias: { type: 'bool' }, mlp_bias: { type: 'bool' } } },
  mistral: { arch: 'llama', defaults: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336 }, keys: { ...LLAMA_KEYS, sliding_window: int(1, true) } },
  gpt2: {
    arch: 'gpt2',
    defaults: { n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 },
    keys: {
      vocab_size: int(), n_embd: int(), n_layer: int(), n_head: int(), n_positions: int(), n_inner: int(1, true),
      activation_function: ACTIVATIONS, resid_pdrop: prob, embd_pdrop: prob, attn_pdrop: prob, layer_norm_epsilon: positive, initializer_range: positive,
      scale_attn_weights: { type: 'bool' }, scale_attn_by_inverse_layer_idx: { type: 'bool' }, reorder_and_upcast_attn: { type: 'bool' },
    },
    aliases: { hidden_size: 'n_embd', num_hidden_layers: 'n_layer', num_attention_heads: 'n_head', max_position_embeddings: 'n_positions' },
  },
};

/** A `model.config` the estimate cannot count: `param` names the key (`model.config.<key>`). */
export class ModelConfigError extends Error {
  readonly param: string;
  constructor(message: string, param: string) {
    super(message);
    this.param = param;
  }
}

function describe(spec: KeySpec): string {
  const orNull = 'nullable' in spec && spec.nullable ? ' or null' : '';
  switch (spec.type) {
    case 'int': return `a whole number from ${spec.min} to ${INT_MAX}${orNull}`;
    case 'number': return `a number from ${spec.min === Number.MIN_VALUE ? 'just above 0' : spec.min} to ${spec.max}${orNull}`;
    case 'bool': return 'true or false';
    case 'enum': return `one of ${spec.values.join(', ')}`;
  }
}

function valid(spec: KeySpec, v: unknown): boolean {
  if (v === null) return 'nullable' in spec && spec.nullable === true;
  switch (spec.type) {
    // Strings, floats and non-finite numbers are refused, never read as a default.
    case 'int': return typeof v === 'number' && Number.isSafeInteger(v) && v >= spec.min && v <= INT_MAX;
    case 'number': return typeof v === 'number' && Number.isFinite(v) && v >= spec.min && v <= spec.max;
    case 'bool': return typeof v === 'boolean';
    case 'enum': return typeof v === 'string' && spec.values.includes(v);
  }
}

/**
 * Checks every key of a `model.config` and returns its values under their canonical names (aliases
 * resolved); throws ModelConfigError naming the first key that is unknown, of the wrong type or out
 * of range.
 */
export function checkModelConfig(config: Record<string, unknown>): { type: string; spec: ConfigType; values: Record<string, unknown> } {
  const type = config.model_type;
  const spec = typeof type === 'string' && Object.hasOwn(CONFIG_TYPES, type) ? CONFIG_TYPES[type]! : undefined;
  if (!spec) {
    throw new ModelConfigError(`model.config.model_type ${JSON.stringify(type)} is not one whose size makam can estimate; use one of ${Object.keys(CONFIG_TYPES).join(', ')}, or name a pretrained model in model.name`, 'model.config.model_type');
  }
  const values: Record<string, unknown> = {};
  const givenAs: Record<string, string> = {};
  for (const [key, value] of Object.entries(config)) {
    if (key === 'model_type') continue;
    const canonical = spec.aliases && Object.hasOwn(spec.aliases, key) ? spec.aliases[key]! : key;
    const keySpec = Object.hasOwn(spec.keys, canonical) ? spec.keys[canonical] : undefined;
    if (!keySpec) {
      const names = [...Object.keys(spec.keys), ...Object.keys(spec.aliases ?? {})];
      throw new ModelConfigError(`model.config.${key} is not a setting makam accepts for model_type '${type}' (it cannot count what it might add); drop it, or use: ${names.join(', ')}`, `model.config.${key}`);
    }
    if (givenAs[canonical] !== undefined) {
      throw new ModelConfigError(`model.config.${key} and model.config.${givenAs[canonical]} are the same setting for model_type '${type}'; give only one`, `model.config.${key}`);
    }
    if (!valid(keySpec, value)) {
      throw new ModelConfigError(`model.config.${key} must be ${describe(keySpec)} (got ${JSON.stringify(value) ?? String(value)})`, `model.config.${key}`);
    }
    givenAs[canonical] = key;
    values[canonical] = value;
  }
  // Heads that do not divide the width are the worker's to refuse: they change no parameter count.
  return { type: type as string, spec, values };
}

/**
 * The shape of a config-built model, every size-bearing key counted; `vocab` is the trained
 * tokenizer's size, which the worker gives the model whatever the config says.
 */
export function shapeFromConfig(config: Record<string, unknown>, vocab: number): ModelShape {
  const { type, spec, values } = checkModelConfig(config);
  const n = (k: string): number => (typeof values[k] === 'number' ? (values[k] as number) : spec.defaults[k]!);
  const source = `config (${type})`;
  if (spec.arch === 'gpt2') {
    const h = n('n_embd');
    const inner = typeof values.n_inner === 'number' ? values.n_inner : 4 * h;
    return { kind: 'decoder', arch: 'gpt2', vocab, hidden: h, layers: n('n_layer'), heads: n('n_head'), kvHeads: n('n_head'), headDim: h / n('n_head'), ff: inner, positions: n('n_positions'), typeVocab: 0, attentionBias: true, mlpBias: true, source };
  }
  if (spec.arch === 'llama') {
    const h = n('hidden_size');
    const heads = n('num_attention_heads');
    const kvHeads = typeof values.num_key_value_heads === 'number' ? values.num_key_value_heads : (spec.defaults.num_key_value_heads ?? heads);
    const headDim = typeof values.head_dim === 'number' ? values.head_dim : Math.floor(h / heads);
    return { kind: 'decoder', arch: 'llama', vocab, hidden: h, layers: n('num_hidden_layers'), heads, kvHeads, headDim, ff: n('intermediate_size'), positions: 0, typeVocab: 0, attentionBias: values.attention_bias === true, mlpBias: values.mlp_bias === true, source };
  }
  const h = n('hidden_size');
  return { kind: 'encoder', arch: 'bert', vocab, hidden: h, layers: n('num_hidden_layers'), heads: n('num_attention_heads'), kvHeads: n('num_attention_heads'), headDim: h / n('num_attention_heads'), ff: n('intermediate_size'), positions: n('max_position_embeddings'), typeVocab: n('type_vocab_size'), attentionBias: true, mlpBias: true, source };
}

export function shapeFromName(name: string, family: 'encoder' | 'decoder'): ModelShape {
  const known = Object.hasOwn(KNOWN_MODELS, name) ? KNOWN_MODELS[name] : undefined;
  if (known) return { ...known, source: `known model ${name}` };
  const assumed = family === 'decoder' ? LLAMA_8B : BERT_BASE;
  return { ...assumed, source: `unknown model: assumed ${family === 'decoder' ? 'LLaMA-3.1-8B' : 'BERT-base'} size` };
}

/**
 * Parameters of the whole model with a classification head of `labels` outputs, as
 * AutoModelForSequenceClassification builds it (test/security/estimates-and-paths.test.ts checks
 * this against the count of the model built on PyTorch's meta device).
 */
export function parameterCount(s: ModelShape, labels: number): number {
  const h = s.hidden;
  if (s.arch === 'gpt2') {
    // wte, wpe; per block ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj; ln_f; score (no bias).
    const perLayer = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * h + (h * s.ff + s.ff) + (s.ff * h + h);
    return (s.vocab + s.positions) * h + s.layers * perLayer + 2 * h + h * labels;
  }
  if (s.arch === 'llama') {
    const q = s.heads * s.headDim;
    const kv = s.kvHeads * s.headDim;
    const attention = h * q + 2 * h * kv + q * h + (s.attentionBias ? q + 2 * kv + h : 0);
    const mlp = 3 * h * s.ff + (s.mlpBias ? 2 * s.ff + h : 0);
    // Two RMSNorms per layer, the final norm, and the score head (no bias).
    return s.vocab * h + s.layers * (attention + mlp + 2 * h) + h + h * labels;
  }
  // BERT: embeddings (word, position, token type, LayerNorm), per layer attention + FFN + 2 LayerNorms,
  // pooler (RoBERTa: the head's dense layer, the same size), classifier.
  const embeddings = (s.vocab + s.positions + s.typeVocab) * h + 2 * h;
  const perLayer = 4 * (h * h + h) + 2 * h * s.ff + s.ff + h + 4 * h;
  return embeddings + s.layers * perLayer + (h * h + h) + (h * labels + labels);
}
