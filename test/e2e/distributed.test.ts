// One job on 2 devices of a worker through the REST API on the real stack: a class `cpu2` whose
// workers offer 2 CPU devices (2 gloo processes under torchrun), a job asking `devices: 2` that
// finishes with metrics, and the 400 naming `devices` when no class (or the asked one) offers enough.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { eventually, startStack, type Stack } from '../support/stack.ts';

const CLASSES = 'cpu2=cpu:16GiB:2,cpu=cpu:16GiB';
let redis: TestRedis;
let stack: Stack;
let datasetId: string;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url, {
    apiEnv: { MAKAM_RESOURCE_CLASSES: CLASSES },
    dispatcherEnv: { MAKAM_RESOURCE_CLASSES: CLASSES, MAKAM_CLASS: 'cpu2' },
    workerEnv: { MAKAM_WORKER_DEVICES: '2', OMP_NUM_THREADS: '1' },
  });
  datasetId = (await stack.uploadSample()).body.id;
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

const TINY = { family: 'encoder', config: { model_type: 'bert', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 128 }, tokenizer: { vocab_size: 300 } };

function submit(extra: object): Promise<{ status: number; body: any }> {
  const body = { kind: 'finetune', model: TINY, dataset: datasetId, hyperparameters: { epochs: 2, batch_size: 4, max_length: 64, test_fraction: 0.2 }, ...extra };
  return stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

test('a job on 2 devices is placed on the class that offers them and finishes with metrics', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const { status, body } = await submit({ devices: 2 });
  assert.equal(status, 202, JSON.stringify(body));
  assert.equal(body.resource_class, 'cpu2');
  assert.equal(body.devices, 2);
  const job = await eventually(`job ${body.id}`, async () => {
    const { body: j } = await stack.json(`/v1/jobs/${body.id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
  }, 240_000, 300);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(job.metrics.epoch, 2);
  assert.equal(job.result.evaluated_on, 'test');
  for (const k of ['accuracy', 'macro_f1', 'weighted_f1']) assert.equal(typeof job.result[k], 'number', k);
  // Trained by 2 ranks: the throughput counts both ranks' samples and says so.
  assert.equal(job.result.throughput.devices, 2, JSON.stringify(job.result.throughput));
}));

test('a job asking more devices than a class offers is refused with a 400 naming devices', async () => {
  const none = await submit({ devices: 4 });
  assert.equal(none.status, 400, JSON.stringify(none.body));
  assert.equal(none.body.error.param, 'devices');
  assert.match(none.body.error.message, /4 devices.*cpu2 \(2\), cpu \(1\).*lower devices/);

  const short = await submit({ devices: 2, resource_class: 'cpu' });
  assert.equal(short.status, 400, JSON.stringify(short.body));
  assert.equal(short.body.error.param, 'devices');
  assert.match(short.body.error.message, /resource_class cpu offers 1; lower devices, or use cpu2 \(2\)/);

  const bad = await submit({ devices: 0 });
  assert.equal(bad.status, 400);
  assert.match(JSON.stringify(bad.body), /devices/);
});
