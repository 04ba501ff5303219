// What the estimator needs to know of a model's architecture, for the models makam's users name,
// for config-built models, and for the from-scratch transformer.

export interface ModelShape {
  kind: 'encoder' | 'decoder';
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ff: number;
  /** Position embeddings (encoders); 0 for rotary. */
  positions: number;
  /** Where the shape came from: a known model, a config, or an assumption. */
  source: string;
}

const BERT_BASE = { kind: 'encoder', vocab: 30522, hidden: 768, layers: 12, heads: 12, kvHeads: 12, ff: 3072, positions: 512 } as const;
const LLAMA_8B = { kind: 'decoder', vocab: 128256, hidden: 4096, layers: 32, heads: 32, kvHeads: 8, ff: 14336, positions: 0 } as const;

/** Published configs (config.json on the Hugging Face hub) of the models the users' guide names. */
export const KNOWN_MODELS: Record<string, Omit<ModelShape, 'source'>> = {
  'dbmdz/bert-base-turkish-cased': { ...BERT_BASE, vocab: 32000 },
  'dbmdz/bert-base-turkish-uncased': { ...BERT_BASE, vocab: 32000 },
  'dbmdz/bert-base-turkish-128k-cased': { ...BERT_BASE, vocab: 128000 },
  'bert-base-multilingual-cased': { ...BERT_BASE, vocab: 119547 },
  'google-bert/bert-base-multilingual-cased': { ...BERT_BASE, vocab: 119547 },
  'bert-base-uncased': BERT_BASE,
  'xlm-roberta-base': { ...BERT_BASE, vocab: 250002, positions: 514 },
  'FacebookAI/xlm-roberta-base': { ...BERT_BASE, vocab: 250002, positions: 514 },
  'meta-llama/Llama-3.1-8B': LLAMA_8B,
  'meta-llama/Llama-3.1-8B-Instruct': LLAMA_8B,
  'meta-llama/Meta-Llama-3.1-8B': LLAMA_8B,
  'meta-llama/Meta-Llama-3.1-8B-Instruct': LLAMA_8B,
};

const num = (v: unknown, fallback: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

/** The shape of a config-built model, with transformers' defaults for the fields it leaves out. */
export function shapeFromConfig(config: Record<string, unknown>, vocab: number, family: 'encoder' | 'decoder'): ModelShape {
  if (family === 'decoder') {
    const hidden = num(config.hidden_size, 4096);
    const heads = num(config.num_attention_heads, 32);
    return { kind: 'decoder', vocab: num(config.vocab_size, vocab), hidden, layers: num(config.num_hidden_layers, 32), heads, kvHeads: num(config.num_key_value_heads, heads), ff: num(config.intermediate_size, 11008), positions: 0, source: 'config' };
  }
  const hidden = num(config.hidden_size, 768);
  const heads = num(config.num_attention_heads, 12);
  return { kind: 'encoder', vocab, hidden, layers: num(config.num_hidden_layers, 12), heads, kvHeads: heads, ff: num(config.intermediate_size, 3072), positions: num(config.max_position_embeddings, 512), source: 'config' };
}

export function shapeFromName(name: string, family: 'encoder' | 'decoder'): ModelShape {
  const known = KNOWN_MODELS[name];
  if (known) return { ...known, source: `known model ${name}` };
  const assumed = family === 'decoder' ? LLAMA_8B : BERT_BASE;
  return { ...assumed, source: `unknown model: assumed ${family === 'decoder' ? 'LLaMA-3.1-8B' : 'BERT-base'} size` };
}

/** Parameters of the whole model with a classification head of `labels` outputs. */
export function parameterCount(s: ModelShape, labels: number): number {
  const h = s.hidden;
  if (s.kind === 'decoder') {
    const kv = (h / s.heads) * s.kvHeads;
    const perLayer = h * h * 2 + h * kv * 2 + 3 * h * s.ff + 2 * h;
    return s.vocab * h + s.layers * perLayer + h + h * labels;
  }
  // BERT: embeddings (+ token types, LayerNorm), per layer attention + FFN + 2 LayerNorms, pooler, head.
  const embeddings = (s.vocab + s.positions + 2) * h + 2 * h;
  const perLayer = 4 * (h * h + h) + 2 * h * s.ff + s.ff + h + 4 * h;
  return embeddings + s.layers * perLayer + (h * h + h) + (h * labels + labels);
}
