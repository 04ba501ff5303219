// A dataset over the worker's upload limit fails its job at once with a code that says so: the
// same bytes would be refused on every attempt, so retrying would only waste the attempts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;

before(async () => {
  redis = await startRedis();
  // The sample dataset is about 25 kB normalized; the worker takes at most 4 kB.
  stack = await startStack(redis.url, { workerEnv: { MAKAM_WORKER_MAX_DATASET_BYTES: '4096', MAKAM_WORKER_DATASET_CACHE_BYTES: '8192' } });
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

test("a dataset over the worker's upload limit fails the job once, coded dataset_too_large", { timeout: 120_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  assert.equal(upload.status, 201);
  const { body: job } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id }) });
  const done = await eventually('the job to fail', async () => {
    const { body } = await stack.json(`/v1/jobs/${job.id}`);
    return body.status === 'failed' ? body : null;
  }, 90_000);
  assert.equal(done.error.code, 'dataset_too_large', JSON.stringify(done.error));
  assert.match(done.error.message, /MAKAM_WORKER_MAX_DATASET_BYTES/);
  assert.equal(done.attempts, 1, 'not retried');
}));
