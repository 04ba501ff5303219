// Every family through the REST API on the real stack: tfidf, scratch, a config-built decoder with
// LoRA, and an encoder with the training techniques switched on, each with a carved test split.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;
let datasetId: string;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url);
  const upload = await stack.uploadSample();
  datasetId = upload.body.id;
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

async function run(model: object, hyperparameters: object): Promise<any> {
  const { status, body } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model, dataset: datasetId, hyperparameters }) });
  assert.equal(status, 202, JSON.stringify(body));
  return eventually(`job ${body.id}`, async () => {
    const { body: job } = await stack.json(`/v1/jobs/${body.id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(job.status) ? job : null;
  }, 240_000, 300);
}

function checkReport(job: any, labels = ['arabesk', 'pop', 'rock', 'türkü']): void {
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const r = job.result;
  assert.equal(r.evaluated_on, 'test');
  assert.ok(r.test_examples > 0);
  for (const k of ['accuracy', 'weighted_f1', 'macro_f1', 'majority_baseline_accuracy']) assert.equal(typeof r[k], 'number', k);
  assert.deepEqual(Object.keys(r.test.per_class).sort(), [...labels].sort());
  assert.deepEqual(r.test.confusion_matrix.labels ?? labels, labels);
  assert.ok(r.throughput.samples_per_second > 0);
}

test('tfidf: the honest floor runs on the cpu class and reports on the test split', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const job = await run({ family: 'tfidf' }, { test_fraction: 0.2 });
  checkReport(job);
  assert.ok(job.result.accuracy > job.result.majority_baseline_accuracy, `tfidf ${job.result.accuracy} beats the majority ${job.result.majority_baseline_accuracy}`);
}));

test('scratch: a SentencePiece transformer trained from zero; the estimate is in the range of measured memory', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const job = await run({ family: 'scratch' }, { test_fraction: 0.2, epochs: 3, layers: 2, d_model: 128, heads: 4, ff_dim: 512, vocab_size: 1000, max_length: 128 });
  checkReport(job);
  // The estimate's model part (weights, gradients, optimizer state, activations; not the fixed
  // overhead or the 10% margin) against the peak RSS increase the worker measured while training.
  const measured = job.result.throughput.peak_memory_bytes;
  const e = job.estimate;
  const modelPart = e.weights_bytes + e.gradients_bytes + e.optimizer_bytes + e.activations_bytes;
  console.log(`scratch memory: estimated ${(modelPart / 2 ** 20).toFixed(0)} MiB (+${(e.overhead_bytes / 2 ** 20).toFixed(0)} MiB overhead), measured peak RSS increase ${(measured / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(measured > 0);
  assert.ok(Math.abs(modelPart - measured) / measured <= 0.5, `within ±50%: estimated ${modelPart}, measured ${measured}`);
}));

test('decoder: a config-built LLaMA-shaped model trained with LoRA exports its adapter', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const job = await run(
    { family: 'decoder', config: { model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 } },
    { test_fraction: 0.2, epochs: 2, lora_r: 4, lora_alpha: 8, learning_rate: 0.001 },
  );
  checkReport(job);
  const files = await stack.json(`/v1/jobs/${job.id}/artifacts/model/files/metrics.json`);
  assert.equal(files.status, 200);
}));

test('encoder with the guide\'s techniques: cosine warmup, accumulation, label smoothing, focal loss, balanced weights, early stopping', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  const job = await run(request.model, {
    ...request.hyperparameters,
    epochs: 8,
    test_fraction: 0.2,
    lr_scheduler: 'cosine',
    warmup_steps: 5,
    gradient_accumulation_steps: 2,
    label_smoothing: 0.1,
    loss: 'focal',
    focal_gamma: 2,
    class_weights: 'balanced',
    early_stopping_patience: 2,
    truncation: 'head+tail',
  });
  checkReport(job);
  assert.ok(job.result.best_epoch >= 1 && job.result.best_epoch <= job.result.epochs_trained);
}));
