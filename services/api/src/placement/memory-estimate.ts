// Training memory estimate for placing a job on a resource class.
//
//   total = weights + gradients + optimizer + activations + overhead
//   weights     = P × w                      w = 4 (fp32), 2 (bf16/fp16 decoders load in half), 0.5 (4-bit)
//   gradients   = T × g                      T = trainable parameters (all, or LoRA's), g = bytes of a weight
//   optimizer   = T × 8 (+ T × 4 master copy when weights are half)   AdamW's two fp32 moments
//   activations = L × b × s × h × a × (34 + 5·heads·s/h)/2            Korthikanti et al. 2022, per layer,
//                 a = bytes per activation (2 half, 4 fp32); the s² attention term is dropped with
//                 flash attention (half precision on CUDA); with gradient checkpointing only each
//                 layer's input (2·b·s·h·a/2) is kept plus one layer's full activations
//   overhead    = 512 MiB CUDA context and workspace (GPU classes), then × 1.1 for fragmentation
// where P = parameters, b = micro-batch (batch_size), s = max_length, h = hidden size, L = layers.
// LoRA: T = Σ over layers and target modules of r × (d_in + d_out), plus the classification head.
import type { MemoryEstimate } from '@makam/shared/job-store';
import type { Family } from '../contracts/hyperparameters.gen.ts';
import { parameterCount, shapeFromConfig, shapeFromName, type ModelShape } from './model-shapes.ts';

export interface EstimateInput {
  family: Family;
  model: { name?: string; config?: Record<string, unknown>; tokenizer?: { vocab_size?: number } };
  hyperparameters: Record<string, unknown>;
  labels: number;
  /** Training examples, for the TF-IDF estimate. */
  rows: number;
  /** Bytes of the training data, for the TF-IDF estimate. */
  datasetBytes: number;
  /** Whether the class trains on CUDA (adds the context; flash attention applies). */
  cuda: boolean;
}

const MiB = 1024 * 1024;
const LORA_MODULE_DIMS = (s: ModelShape): Record<string, [number, number]> => {
  if (s.arch === 'gpt2') {
    // c_proj names both the attention's (h → h) and the MLP's (ff → h) output: r × (3h + ff) in all.
    return { c_attn: [s.hidden, 3 * s.hidden], c_fc: [s.hidden, s.ff], c_proj: [s.hidden + s.ff, 2 * s.hidden] };
  }
  const q = s.heads * s.headDim;
  const kv = s.kvHeads * s.headDim;
  return {
    q_proj: [s.hidden, q],
    k_proj: [s.hidden, kv],
    v_proj: [s.hidden, kv],
    o_proj: [q, s.hidden],
    gate_proj: [s.hidden, s.ff],
    up_proj: [s.hidden, s.ff],
    down_proj: [s.ff, s.hidden],
  };
};

function shapeOf(input: EstimateInput): ModelShape {
  const hp = input.hyperparameters;
  if (input.family === 'scratch') {
    const d = Number(hp.d_model);
    const heads = Number(hp.heads);
    // The character n-gram table ((buckets + 1) x d_model) is one more embedding, counted with the vocabulary.
    const ngramRows = Number(hp.char_ngram_buckets ?? 0) > 0 ? Number(hp.char_ngram_buckets) + 1 : 0;
    return { kind: 'encoder', arch: 'bert', vocab: Number(hp.vocab_size) + ngramRows, hidden: d, layers: Number(hp.layers), heads, kvHeads: heads, headDim: d / heads, ff: Number(hp.ff_dim), positions: 512, typeVocab: 2, attentionBias: true, mlpBias: true, source: 'scratch hyperparameters' };
  }
  const family = input.family as 'encoder' | 'decoder';
  // The worker gives a config-built model the trained tokenizer's vocabulary, whatever the config says.
  if (input.model.config) return shapeFromConfig(input.model.config, input.model.tokenizer?.vocab_size ?? 2000);
  return shapeFromName(input.model.name ?? '', family);
}

export function estimateMemory(input: EstimateInput): MemoryEstimate {
  if (input.family === 'tfidf') {
    // Sparse n-gram matrices: roughly 30× the text for word + char n-grams, plus the model.
    const activations = input.datasetBytes * 30;
    const overhead = 256 * MiB;
    return { total_bytes: Math.ceil((activations + overhead) * 1.1), parameters: 0, trainable_parameters: 0, weights_bytes: 0, gradients_bytes: 0, optimizer_bytes: 0, activations_bytes: activations, overhead_bytes: overhead, basis: 'tfidf: 30 × dataset bytes + 256 MiB' };
  }
  const hp = input.hyperparameters;
  const s = shapeOf(input);
  const P = parameterCount(s, input.labels);
  const precision = String(hp.precision ?? 'auto');
  const half = precision === 'bf16' || precision === 'fp16' || (precision === 'auto' && input.cuda);
  const fourBit = input.family === 'decoder' && hp.load_in_4bit === true;
  const lora = input.family === 'decoder';
  // Decoders load their weights in half precision (or 4-bit); encoders keep fp32 weights under autocast.
  const weightBytes = fourBit ? 0.5 : lora && half ? 2 : 4;
  let T = P;
  if (lora) {
    const r = Number(hp.lora_r ?? 16);
    const dims = LORA_MODULE_DIMS(s);
    const modules = (hp.lora_target_modules as string[] | undefined) ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
    T = s.layers * modules.reduce((sum, m) => sum + (dims[m] ? r * (dims[m][0] + dims[m][1]) : 0), 0) + s.hidden * input.labels;
  }
  const weights = P * weightBytes;
  const trainableBytes = lora ? 4 : weightBytes; // LoRA adapters train in fp32
  const gradients = T * trainableBytes;
  const optimizer = T * 8 + (trainableBytes < 4 ? T * 4 : 0);
  const b = Number(hp.batch_size ?? 16);
  const seq = Number(hp.max_length ?? 128);
  const a = half ? 2 : 4;
  const flash = half && input.cuda;
  const perLayerFull = b * seq * s.hidden * (a / 2) * (34 + (flash ? 0 : (5 * s.heads * seq) / s.hidden));
  const checkpointing = hp.gradient_checkpointing === true;
  const activations = checkpointing ? s.layers * b * seq * s.hidden * a + perLayerFull : s.layers * perLayerFull;
  // Logits over the vocabulary are not computed by a classification head; the embedding output is.
  const overhead = input.cuda ? 512 * MiB : 128 * MiB;
  const total = Math.ceil((weights + gradients + optimizer + activations + overhead) * 1.1);
  return {
    total_bytes: total,
    parameters: P,
    trainable_parameters: T,
    weights_bytes: Math.ceil(weights),
    gradients_bytes: Math.ceil(gradients),
    optimizer_bytes: Math.ceil(optimizer),
    activations_bytes: Math.ceil(activations),
    overhead_bytes: overhead,
    basis: `${s.source}; ${weightBytes === 0.5 ? '4-bit' : weightBytes === 2 ? 'half' : 'fp32'} weights${lora ? `, LoRA r=${hp.lora_r}` : ''}, batch ${b} × ${seq} tokens${checkpointing ? ', checkpointing' : ''}${flash ? ', flash attention' : ''}`,
  };
}
