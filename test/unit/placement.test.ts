import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlacementError, parseResourceClasses, place } from '../../services/api/src/placement/resource-classes.ts';
import { defaultsFor } from '../../services/api/src/placement/hyperparameters.ts';
import { estimateMemory } from '../../services/api/src/placement/memory-estimate.ts';
import { parameterCount, shapeFromName } from '../../services/api/src/placement/model-shapes.ts';
import type { Family } from '../../services/api/src/contracts/hyperparameters.gen.ts';

const classes = parseResourceClasses('cpu,gpu-4g,gpu-32g');
const GiB = 1024 ** 3;
const input = (family: Family, model: object, hp: object = {}) => ({ family, model, hyperparameters: { ...defaultsFor(family), ...hp }, labels: 6, rows: 3000, datasetBytes: 5e6 });

test('parameter counts match the published models', () => {
  // bert-base-uncased: 109,482,240 without a head; LLaMA-3.1-8B: 8.03 B with its LM head (0.525 B).
  const bert = parameterCount(shapeFromName('bert-base-uncased', 'encoder'), 2);
  assert.ok(Math.abs(bert - 109_482_240 - 768 * 2 - 2) < 1e5, String(bert));
  const llama = parameterCount(shapeFromName('meta-llama/Llama-3.1-8B', 'decoder'), 2);
  assert.ok(Math.abs(llama + 128256 * 4096 - 8.03e9) < 0.01e9, String(llama));
});

test('a known model is counted exactly, and a model named like an Object property is an unknown one', () => {
  // BertForSequenceClassification of bert-base-uncased with 2 labels, as transformers builds it.
  assert.equal(parameterCount(shapeFromName('bert-base-uncased', 'encoder'), 2), 109_483_778);
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const { estimate } = place(input('encoder', { name }), classes);
    assert.ok(Number.isFinite(estimate.total_bytes) && estimate.parameters > 1e8, `${name}: ${JSON.stringify(estimate)}`);
  }
});

test('a BERT-base job goes to gpu-4g and a LLaMA-8B LoRA job to gpu-32g', () => {
  assert.equal(place(input('encoder', { name: 'dbmdz/bert-base-turkish-cased' }), classes).resource_class, 'gpu-4g');
  assert.equal(place(input('decoder', { name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 4 }), classes).resource_class, 'gpu-32g');
  assert.equal(place(input('tfidf', {}), classes).resource_class, 'cpu');
});

test('a job that fits nowhere is refused with what would make it fit', () => {
  assert.throws(() => place(input('decoder', { name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 32 }), classes), (err: unknown) => {
    assert.ok(err instanceof PlacementError);
    assert.match(err.message, /needs about \d+\.\d GiB/);
    assert.match(err.message, /enable gradient_checkpointing|lower batch_size to 8/);
    return true;
  });
  assert.throws(() => place(input('decoder', { name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 16 }), classes), /set load_in_4bit \(QLoRA\)/);
  assert.throws(() => place(input('encoder', { name: 'dbmdz/bert-base-turkish-cased' }, { max_length: 512, batch_size: 64 }), classes, 'gpu-4g'), /lower batch_size to \d+|gradient_checkpointing/);
});

test('each memory lever lowers the estimate', () => {
  const base = input('encoder', { name: 'dbmdz/bert-base-turkish-cased' }, { max_length: 512, batch_size: 16 });
  const e = (hp: object) => estimateMemory({ ...base, hyperparameters: { ...base.hyperparameters, ...hp }, cuda: true }).total_bytes;
  assert.ok(e({ gradient_checkpointing: true }) < e({}));
  assert.ok(e({ batch_size: 8 }) < e({}));
  assert.ok(e({ max_length: 256 }) < e({}));
  const llama = input('decoder', { name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 4 });
  const l = (hp: object) => estimateMemory({ ...llama, hyperparameters: { ...llama.hyperparameters, ...hp }, cuda: true });
  assert.ok(l({ load_in_4bit: true }).weights_bytes < l({}).weights_bytes / 3);
  assert.ok(l({}).trainable_parameters < l({}).parameters / 100, 'LoRA trains a small share');
  assert.ok(l({}).total_bytes > 15 * GiB && l({}).total_bytes < 32 * GiB);
});

test('resource classes parse with defaults or explicit device and memory', () => {
  assert.deepEqual(parseResourceClasses('cpu,a100=cuda:80GiB'), [
    { name: 'cpu', device: 'cpu', memory_bytes: 16 * GiB, devices: 1 },
    { name: 'a100', device: 'cuda', memory_bytes: 80 * GiB, devices: 1 },
  ]);
  assert.throws(() => parseResourceClasses('h100'), /needs a device and memory/);
  assert.throws(() => parseResourceClasses('x=tpu:1GiB'), /name=cuda:24GiB/);
});

test("a scratch model's character n-gram table is counted in its parameters", () => {
  const scratch = (hp: object) => estimateMemory({ ...input('scratch', {}, hp), cuda: true });
  const d = Number(defaultsFor('scratch').d_model);
  const buckets = 2 ** 20;
  const added = scratch({ char_ngram_buckets: buckets }).parameters - scratch({}).parameters;
  assert.ok(added >= (buckets + 1) * d, `${added} parameters added for ${buckets} buckets of ${d}`);
});
