// Issue 10, estimates that cannot be lied to and model paths confined to roots: against the real API
// (real Redis), with parameter counts checked against the model the worker's Python builds on the
// meta device (workers-python/.venv: nothing is allocated, nothing downloaded).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from '../support/keys.ts';
import { uniquePrefix, type TestRedis } from '../support/redis.ts';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';
import { PYTHON, ROOT } from '../support/stack.ts';

let api: InjectApi;
let redis: TestRedis;
let app: FastifyInstance;
let key: string;
let datasetId: string;
let labels: number;
const GiB = 1024 ** 3;

before(async () => {
  api = await startInjectApi({
    tenant: 'estimates',
    env: {
      MAKAM_RATE_LIMIT_PER_MINUTE: '1000000',
      MAKAM_TENANT_MAX_ACTIVE_JOBS: '10000',
      MAKAM_MODEL_ROOTS: '/srv/models:/data/hf/',
      MAKAM_MAX_EVENT_LOOP_DELAY_MS: '0', // a busy test machine is no overload
    },
  });
  ({ app, redis, key } = api);
  const upload = await api.upload({ rows: 40 });
  datasetId = upload.id;
  labels = upload.labels.length;
});
after(async () => {
  await api?.close();
});
const submit = (model: object, extra: object = {}) =>
  app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: JSON.stringify({ kind: 'finetune', model, dataset: datasetId, hyperparameters: { epochs: 1 }, ...extra }) });

/** The parameters of each config's AutoModelForSequenceClassification, built on the meta device by the worker's code. */
async function metaCounts(configs: { config: Record<string, unknown>; vocab: number; labels: number }[]): Promise<number[]> {
  const script = `
import json, sys
from transformers import AutoConfig
from makam_worker.training.model_limits import meta_parameter_count
out = []
for c in json.load(sys.stdin):
    fields = {k: v for k, v in c["config"].items() if k != "model_type"}
    out.append(meta_parameter_count(AutoConfig.for_model(c["config"]["model_type"], **fields, vocab_size=c["vocab"], num_labels=c["labels"])))
print(json.dumps(out))`;
  const child = promisify(execFile)(PYTHON, ['-c', script], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  child.child.stdin!.end(JSON.stringify(configs));
  const { stdout } = await child;
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

// Configs of every type the estimate counts, with any subset of the size-bearing keys (aliases too).
const some = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const drop = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const bertLike = fc
  .record({ model_type: fc.constantFrom('bert', 'roberta', 'xlm-roberta'), heads: fc.integer({ min: 1, max: 4 }), headDim: fc.integer({ min: 1, max: 16 }), num_hidden_layers: fc.integer({ min: 1, max: 3 }), intermediate_size: fc.integer({ min: 1, max: 96 }), max_position_embeddings: some(fc.integer({ min: 1, max: 700 })), type_vocab_size: some(fc.integer({ min: 1, max: 5000 })) })
  .map(({ heads, headDim, ...r }) => drop({ ...r, num_attention_heads: heads, hidden_size: heads * headDim }));
const llamaLike = fc
  .record({ model_type: fc.constantFrom('llama', 'mistral'), kv: fc.integer({ min: 1, max: 3 }), groups: fc.integer({ min: 1, max: 3 }), width: fc.integer({ min: 1, max: 8 }).map((h) => 2 * h), headDim: fc.integer({ min: 1, max: 8 }).map((h) => 2 * h), ownHeadDim: fc.boolean(), num_hidden_layers: fc.integer({ min: 1, max: 3 }), intermediate_size: fc.integer({ min: 1, max: 96 }), bias: fc.boolean(), mlpBias: fc.boolean() })
  .map(({ model_type, kv, groups, width, headDim, ownHeadDim, bias, mlpBias, ...r }) => {
    const heads = kv * groups;
    const hidden = heads * width; // a head_dim of its own may differ from hidden / heads
    return drop({ model_type, ...r, num_attention_heads: heads, num_key_value_heads: kv, hidden_size: hidden, head_dim: ownHeadDim ? headDim : undefined, ...(model_type === 'llama' ? { attention_bias: bias, mlp_bias: mlpBias } : {}) });
  });
const gpt2 = fc
  .record({ heads: fc.integer({ min: 1, max: 4 }), headDim: fc.integer({ min: 1, max: 16 }), layers: fc.integer({ min: 1, max: 3 }), positions: fc.integer({ min: 1, max: 700 }), inner: some(fc.oneof(fc.integer({ min: 1, max: 96 }), fc.constant(null))), aliases: fc.boolean() })
  .map(({ heads, headDim, layers, positions, inner, aliases }) =>
    drop({ model_type: 'gpt2', [aliases ? 'hidden_size' : 'n_embd']: heads * headDim, [aliases ? 'num_attention_heads' : 'n_head']: heads, [aliases ? 'num_hidden_layers' : 'n_layer']: layers, [aliases ? 'max_position_embeddings' : 'n_positions']: positions, n_inner: inner }),
  );

test('the estimate counts every parameter a config creates, as the model built on the meta device has them', { timeout: 120_000 }, async () => {
  const samples = fc.sample(fc.record({ config: fc.oneof(bertLike, llamaLike, gpt2), vocab: fc.integer({ min: 100, max: 5000 }) }), { numRuns: 45, seed: 10 });
  // The defaults of each type too: a config of the type alone.
  for (const model_type of ['bert', 'roberta', 'xlm-roberta', 'llama', 'mistral', 'gpt2']) samples.push({ config: { model_type }, vocab: 1000 });
  const estimated: number[] = [];
  for (const { config, vocab } of samples) {
    const res = await submit({ family: 'encoder', config, tokenizer: { vocab_size: vocab } }, { resource_class: 'gpu-32g' });
    // A default-sized LLaMA does not fit gpu-32g: its refusal carries no count, so it is counted directly.
    if (res.statusCode === 400 && res.json().error.code === 'does_not_fit') {
      const { shapeFromConfig, parameterCount } = await import('../../services/api/src/placement/model-shapes.ts');
      estimated.push(parameterCount(shapeFromConfig(config, vocab), labels));
      continue;
    }
    assert.equal(res.statusCode, 202, `${JSON.stringify(config)}: ${res.body}`);
    estimated.push(res.json().estimate.parameters);
  }
  const real = await metaCounts(samples.map((s) => ({ ...s, labels })));
  const wrong = samples.map((s, i) => ({ config: s.config, vocab: s.vocab, estimated: estimated[i], real: real[i] })).filter((r) => r.estimated !== r.real);
  assert.deepEqual(wrong, [], 'every count equals the real one');
  console.log(`# ${samples.length} configs: every estimated parameter count equals the meta-device count (largest ${Math.max(...real).toLocaleString('en')})`);
});

test("the worker's meta-device check estimates a run's memory as the API does", { timeout: 60_000 }, async () => {
  const { estimateMemory } = await import('../../services/api/src/placement/memory-estimate.ts');
  const { defaultsFor } = await import('../../services/api/src/placement/hyperparameters.ts');
  const cases = [
    { family: 'encoder', config: { model_type: 'bert', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, type_vocab_size: 7 }, hp: { batch_size: 8, max_length: 128, precision: 'fp32' }, cuda: false },
    { family: 'encoder', config: { model_type: 'roberta', hidden_size: 96, num_hidden_layers: 3, num_attention_heads: 4, intermediate_size: 300 }, hp: { batch_size: 32, max_length: 256, precision: 'bf16', gradient_checkpointing: true }, cuda: true },
    { family: 'decoder', config: { model_type: 'llama', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, head_dim: 32 }, hp: { batch_size: 4, max_length: 256, precision: 'bf16', lora_r: 8, lora_target_modules: ['q_proj', 'v_proj', 'down_proj'] }, cuda: true },
    { family: 'decoder', config: { model_type: 'gpt2', n_embd: 64, n_layer: 2, n_head: 4 }, hp: { batch_size: 2, max_length: 64, precision: 'fp32', load_in_4bit: true, lora_target_modules: ['c_attn', 'c_proj'] }, cuda: false },
  ] as const;
  const vocab = 500;
  const ts = cases.map((c) => {
    const hyperparameters = { ...defaultsFor(c.family), ...c.hp };
    return { hp: hyperparameters, total: estimateMemory({ family: c.family, model: { config: c.config, tokenizer: { vocab_size: vocab } }, hyperparameters, labels, rows: 0, datasetBytes: 0, cuda: c.cuda }).total_bytes };
  });
  const script = `
import json, sys, types
from transformers import AutoConfig
from makam_worker.training.model_limits import estimate_training_bytes, meta_parameter_count
out = []
for c in json.load(sys.stdin):
    fields = {k: v for k, v in c["config"].items() if k != "model_type"}
    config = AutoConfig.for_model(c["config"]["model_type"], **fields, vocab_size=c["vocab"], num_labels=c["labels"])
    hp = types.SimpleNamespace(**c["hp"])
    out.append(estimate_training_bytes(config, meta_parameter_count(config), hp, family=c["family"], labels=c["labels"], precision=c["hp"]["precision"], cuda=c["cuda"]).total_bytes)
print(json.dumps(out))`;
  const child = promisify(execFile)(PYTHON, ['-c', script], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  child.child.stdin!.end(JSON.stringify(cases.map((c, i) => ({ ...c, hp: ts[i]!.hp, vocab, labels }))));
  const worker = JSON.parse((await child).stdout.trim().split('\n').at(-1)!) as number[];
  assert.deepEqual(worker, ts.map((t) => t.total));
});

test("the issue's lies: a 3.2 B-parameter tiny BERT and a 38 B-parameter gpt2 are counted as what they are", async () => {
  const bert = { model_type: 'bert', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128, type_vocab_size: 50_000_000 };
  const res = await submit({ family: 'encoder', config: bert });
  assert.equal(res.statusCode, 400, res.body);
  const { error } = res.json();
  assert.equal(error.code, 'does_not_fit');
  const gib = Number(/needs about ([\d.]+) GiB/.exec(error.message)?.[1]);
  assert.ok(gib > 50, `3.2 B fp32 parameters with gradients and AdamW need over 50 GiB, the estimate says ${gib}: ${error.message}`);
  const [real] = await metaCounts([{ config: bert, vocab: 2000, labels }]);
  const { shapeFromConfig, parameterCount } = await import('../../services/api/src/placement/model-shapes.ts');
  assert.ok(real! > 3.2e9, String(real));
  assert.equal(parameterCount(shapeFromConfig(bert, 2000), labels), real);

  const big = { model_type: 'gpt2', n_embd: 12288, n_layer: 21, n_head: 96 };
  const huge = await submit({ family: 'decoder', config: big });
  assert.equal(huge.statusCode, 400, huge.body);
  assert.equal(huge.json().error.code, 'does_not_fit');
  assert.match(huge.json().error.message, /needs about \d\d+\.\d GiB/);
  assert.ok(parameterCount(shapeFromConfig(big, 2000), labels) > 38e9);
  // Even in 4 bits its 38 B weights are 19 GB: gpu-32g, never the 3.27 GiB the estimate said.
  const fourBit = await submit({ family: 'decoder', config: big }, { hyperparameters: { epochs: 1, load_in_4bit: true, batch_size: 1 } });
  assert.equal(fourBit.statusCode, 202, fourBit.body);
  assert.equal(fourBit.json().resource_class, 'gpu-32g');
  assert.ok(fourBit.json().estimate.total_bytes > 20 * GiB, fourBit.body);
});

test('a size-bearing value of the wrong type is refused naming model.config.<key>, never read as a default', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ model_type: 'bert', hidden_size: '4096' }, 'hidden_size'],
    [{ model_type: 'bert', num_hidden_layers: 2.5 }, 'num_hidden_layers'],
    [{ model_type: 'bert', type_vocab_size: -1 }, 'type_vocab_size'],
    [{ model_type: 'bert', intermediate_size: 'Infinity' }, 'intermediate_size'],
    [{ model_type: 'bert', max_position_embeddings: null }, 'max_position_embeddings'],
    [{ model_type: 'bert', max_position_embeddings: 2 ** 31 }, 'max_position_embeddings'],
    [{ model_type: 'gpt2', n_embd: true }, 'n_embd'],
    [{ model_type: 'gpt2', hidden_size: [64] }, 'hidden_size'],
    [{ model_type: 'llama', num_key_value_heads: '8' }, 'num_key_value_heads'],
    [{ model_type: 'llama', attention_bias: 'yes' }, 'attention_bias'],
    [{ model_type: 'bert', hidden_dropout_prob: 2 }, 'hidden_dropout_prob'],
  ];
  for (const [config, field] of cases) {
    const res = await submit({ family: 'encoder', config });
    assert.equal(res.statusCode, 400, `${JSON.stringify(config)}: ${res.body}`);
    const { error } = res.json();
    assert.deepEqual([error.code, error.param], ['invalid_model_config', `model.config.${field}`], res.body);
    assert.match(error.message, new RegExp(`model\\.config\\.${field} must be`));
  }
  // A number JSON cannot hold as a finite double (1e400 parses as Infinity).
  const inf = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: `{"kind":"finetune","model":{"family":"encoder","config":{"model_type":"bert","hidden_size":1e400}},"dataset":"${datasetId}"}` });
  assert.equal(inf.statusCode, 400, inf.body);
  assert.equal(inf.json().error.param, 'model.config.hidden_size');
});

test('a model_type or key the estimate cannot count is refused, naming what it accepts', async () => {
  const type = await submit({ family: 'encoder', config: { model_type: 'distilbert', dim: 64 } });
  assert.equal(type.statusCode, 400, type.body);
  assert.equal(type.json().error.param, 'model.config.model_type');
  assert.match(type.json().error.message, /bert, roberta, xlm-roberta, llama, mistral, gpt2/);
  for (const [config, field] of [
    [{ model_type: 'bert', add_cross_attention: true }, 'add_cross_attention'],
    [{ model_type: 'bert', n_embd: 64 }, 'n_embd'],
    [{ model_type: 'gpt2', n_embd: 64, hidden_size: 64 }, 'hidden_size'],
  ] as const) {
    const res = await submit({ family: 'encoder', config });
    assert.equal(res.statusCode, 400, `${JSON.stringify(config)}: ${res.body}`);
    assert.deepEqual([res.json().error.code, res.json().error.param], ['invalid_model_config', `model.config.${field}`], res.body);
  }
  // Prototype keys are refused (by the body check or the config check), named.
  const ctor = await submit({ family: 'encoder', config: { model_type: 'bert', constructor: 1 } });
  assert.deepEqual([ctor.statusCode, ctor.json().error.param], [400, 'model.config.constructor'], ctor.body);
  const proto = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: `{"kind":"finetune","model":{"family":"encoder","config":{"model_type":"bert","__proto__":{"hidden_size":1}}},"dataset":"${datasetId}"}` });
  assert.equal(proto.statusCode, 400, proto.body);
});

test('model.name is a hub id or a path under a model root; anything else is refused naming model.name', async () => {
  for (const name of ['dbmdz/bert-base-turkish-cased', 'bert-base-uncased', 'org/name.v2_x-y', '/srv/models/berturk', '/data/hf/org//m/']) {
    const res = await submit({ family: 'encoder', name });
    assert.equal(res.statusCode, 202, `${name}: ${res.body}`);
  }
  for (const name of ['/etc', '/etc/passwd', '/srv/models', '/srv/modelsx/a', '/srv/models/../etc', '/srv/models/./a', '/srv/models/a/../../etc', '../models/a', './a', '.a/b', 'a/b/c', 'org/../x', 'a/..', 'org--x/y', 'org/-x', 'C:\\models\\a', '~/models', 'a b/c', `${'a'.repeat(97)}`, '/srv/models/a\\..\\..\\etc', '/srv/models/a\ud800b', '/srv/models/a\u0085b', '/srv/models/a\nb']) {
    const res = await submit({ family: 'encoder', name });
    assert.equal(res.statusCode, 400, `${name}: ${res.body}`);
    const { error } = res.json();
    if (!name.isWellFormed()) {
      // A lone surrogate is no text at all: the JSON body parser refuses it first, naming the field.
      assert.deepEqual([error.code, error.param], ['invalid_string', 'model.name'], `${name}: ${res.body}`);
      continue;
    }
    assert.deepEqual([error.code, error.param], ['invalid_model_name', 'model.name'], `${name}: ${res.body}`);
    assert.match(error.message, /Hugging Face id such as 'org\/name'.*under a model root \(\/srv\/models, \/data\/hf\)/);
  }
});

test('without model roots, only hub ids pass', async () => {
  const prefix = uniquePrefix();
  const bare = await buildApp(loadApiConfig({ REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-estimates-')) }));
  try {
    const own = await createKey(redis.url, prefix, 'bare');
    const ds = (await bare.inject({ method: 'POST', url: '/v1/datasets', headers: { authorization: `Bearer ${own}`, 'content-type': 'application/jsonl' }, payload: '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n' })).json().id;
    const res = await bare.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${own}` }, payload: { kind: 'finetune', model: { family: 'encoder', name: '/models/berturk' }, dataset: ds } });
    assert.equal(res.statusCode, 400, res.body);
    assert.match(res.json().error.message, /no model roots \(MAKAM_MODEL_ROOTS\)/);
  } finally {
    await bare.close();
  }
  assert.throws(() => loadApiConfig({ MAKAM_MODEL_ROOTS: 'models:/srv' }), /MAKAM_MODEL_ROOTS/);
});

test('a run the worker counts too large for its memory fails once as does_not_fit, with the figures, through the real dispatcher and worker', { timeout: 180_000 }, async () => {
  const { startStack } = await import('../support/stack.ts');
  // The API places the tiny model anywhere; the worker, told it has 64 MiB, counts it on the meta device first.
  const stack = await startStack(redis.url, { workerEnv: { MAKAM_WORKER_MEMORY_BYTES: String(64 * 1024 * 1024) } });
  try {
    await stack.withLogs(async () => {
      const upload = await stack.uploadSample();
      const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
      const { status, body } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...request, dataset: upload.body.id }) });
      assert.equal(status, 202, JSON.stringify(body));
      const job = await stack.finished(body.id, 120_000);
      assert.equal(job.status, 'failed');
      assert.equal(job.error.code, 'does_not_fit', JSON.stringify(job.error));
      assert.match(job.error.message, /has [\d,]+ parameters and training it needs about [\d.]+ GiB .* but this worker has 0\.06 GiB \(MAKAM_WORKER_MEMORY_BYTES\)/);
      assert.equal(job.attempts, 1, 'bad input is not retried');
      assert.equal(job.progress, null, 'nothing was trained');
    });
  } finally {
    await stack.stop();
  }
});
