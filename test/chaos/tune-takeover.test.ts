// A dispatcher killed while it coordinates a tune job and drives its trials: a new dispatcher takes
// the study over from Redis (the trials are job records, the study Optuna's journal) and re-attaches
// to the trials in progress. The study ends with every trial told once, none left running, none
// trained twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';
import { tally } from './tally.ts';

const EPOCHS = 20;
let redis: TestRedis;
let stack: Stack;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url, { workers: 2, dispatcherEnv: { MAKAM_LOCK_MS: '2000', MAKAM_TUNE_POLL_MS: '200' } });
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

test('a killed dispatcher is replaced mid-study: the study goes on, no trial is lost, repeated or left running', { timeout: 900_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/tune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  // Still training when the dispatcher dies (it dies after their first epoch), even on a fast machine; the
  // third trial starts only after the takeover, so the new dispatcher must ask the study for it.
  request.hyperparameters.epochs = EPOCHS;
  Object.assign(request.search, { trials: 3, pruner: 'none' });
  const { body: submitted } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  tally.submitted++;
  const id: string = submitted.id;
  await eventually('two trials training', async () => {
    const { body } = await stack.json(`/v1/jobs/${id}/trials`);
    return body.data.filter((t: { intermediate_values: unknown[] }) => t.intermediate_values.length > 0).length >= 2;
  }, 300_000, 250);

  await stack.kill('dispatcher', 'SIGKILL');
  tally.faults++;
  stack.startDispatcher();

  const job = await stack.finished(id, 840_000);
  if (job.status === 'succeeded') tally.finished++;
  else tally.lost++;
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const { body: trials } = await stack.json(`/v1/jobs/${id}/trials`);
  assert.deepEqual(trials.data.map((t: { number: number }) => t.number), [0, 1, 2], 'three trials, numbered once each');
  for (const t of trials.data) {
    assert.equal(t.state, 'complete', `trial ${t.number}: ${t.status}`);
    const { body: events } = await stack.json(`/v1/jobs/${t.job_id}/events?limit=1000`);
    assert.equal(events.data.filter((e: { type: string }) => e.type === 'started').length, 1, `trial ${t.number} trained once`);
    assert.deepEqual(t.intermediate_values.map((v: { epoch: number }) => v.epoch), Array.from({ length: EPOCHS }, (_, i) => i + 1), `trial ${t.number}: every epoch once`);
  }
  assert.deepEqual({ ...job.study, best: null }, { trials: 3, complete: 3, pruned: 0, failed: 0, running: 0, best: null });
}));
