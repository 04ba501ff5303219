// The metric series with masked-LM points (issue 13): the phase counts its own steps, so a retry that
// resumes inside the phase replaces the phase's redone points and every fine-tune point after them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { JobStore, type JobEvent, type JobRecord } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;
let store: JobStore;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
  store = new JobStore(redis, redisKeys(uniquePrefix()));
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const record = (): JobRecord => {
  const now = new Date().toISOString();
  return {
    id: newJobId(), object: 'job', tenant: 't1', kind: 'finetune', status: 'queued', model: { family: 'scratch' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null,
    unlabeled_dataset: 'ds_u', hyperparameters: { mlm_epochs: 3 }, resource_class: 'cpu', estimate: null, progress: null, metrics: null, result: null, artifact: null, error: null,
    attempts: 0, worker: null, cancel_requested: false, created_at: now, started_at: null, finished_at: null, updated_at: now,
  };
};
const mlm = (attempt: number, epoch: number): JobEvent => ({ type: 'metrics', attempt, phase: 'mlm', epoch, step: epoch * 50, mlm_loss: 5 - epoch });
const tuned = (attempt: number, epoch: number): JobEvent => ({ type: 'metrics', attempt, epoch, step: epoch * 10, train_loss: 1, validation_loss: 1, accuracy: 0.5, weighted_f1: 0.5, macro_f1: 0.5 });

test('a retry resumed inside the masked-LM phase replaces the points it redoes, fine-tune ones included', async () => {
  const job = record();
  await store.create(job);
  let seq = 0;
  // Attempt 1: three MLM epochs (steps 50..150), one fine-tune epoch (step 10), and its latest metrics untouched by MLM.
  for (const e of [mlm(1, 1), mlm(1, 2), mlm(1, 3), tuned(1, 1)]) await store.appendWorkerEvent(job.id, ++seq, e, e.type === 'metrics' && !('phase' in e) ? { metrics: e } : {});
  // Attempt 2 resumed from the checkpoint of MLM epoch 2: MLM epoch 3 again, then fine-tuning again.
  await store.startRun(job.id, 2);
  seq = 0;
  for (const e of [mlm(2, 3), tuned(2, 1), tuned(2, 2)]) await store.appendWorkerEvent(job.id, ++seq, e);
  const series = (await store.metrics(job.id)) as Array<{ phase?: string; epoch: number; attempt: number }>;
  assert.deepEqual(series.map((p) => [p.phase ?? 'finetune', p.epoch, p.attempt]), [
    ['mlm', 1, 1], ['mlm', 2, 1], ['mlm', 3, 2], ['finetune', 1, 2], ['finetune', 2, 2],
  ]);
  assert.equal((await store.get(job.id))?.metrics?.accuracy, 0.5);
});
