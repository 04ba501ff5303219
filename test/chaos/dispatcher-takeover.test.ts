// A dispatcher killed while its job trains: another dispatcher takes the job over and re-attaches to
// the run in progress instead of training again; the event log and metric series stay whole.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';
import { tally } from './tally.ts';

let redis: TestRedis;
let stack: Stack;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url, { dispatcherEnv: { MAKAM_LOCK_MS: '2000' } });
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

test('a killed dispatcher is replaced and the run is re-attached, not trained twice', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  Object.assign(request.hyperparameters, { epochs: 12, batch_size: 8 });
  const { body: submitted } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  tally.submitted++;
  await eventually('training to be under way', async () => {
    const { body } = await stack.json(`/v1/jobs/${submitted.id}`);
    return body.progress?.step > 0;
  }, 120_000, 100);

  await stack.kill('dispatcher', 'SIGKILL');
  tally.faults++;
  const epochAtKill = (await stack.json(`/v1/jobs/${submitted.id}`)).body.progress.epoch;
  stack.startDispatcher();

  const job = await stack.finished(submitted.id, 420_000);
  if (job.status === 'succeeded') tally.finished++;
  else tally.lost++;
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(job.attempts, 1, 'no second attempt');
  assert.ok(epochAtKill < 12, 'the dispatcher died before training ended');

  const { body: events } = await stack.json(`/v1/jobs/${submitted.id}/events?limit=1000`);
  assert.equal(events.data.filter((e: { type: string }) => e.type === 'started').length, 1, 'the model trained once');
  const statuses = events.data.filter((e: { type: string }) => e.type === 'status').map((e: { data: { status: string } }) => e.data.status);
  assert.deepEqual(statuses, ['queued', 'running', 'succeeded']);
  const { body: metrics } = await stack.json(`/v1/jobs/${submitted.id}/metrics`);
  assert.deepEqual(metrics.data.map((p: { epoch: number }) => p.epoch), Array.from({ length: 12 }, (_, i) => i + 1), 'every epoch once, none missing');
}));
