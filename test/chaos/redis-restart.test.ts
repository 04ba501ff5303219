// Redis crashes (SIGKILL) and restarts from its AOF while a job trains: the job record, the dataset
// and every finished metric survive, the API answers 503 while Redis is away, and API and
// dispatcher reconnect by themselves; the job finishes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOwnRedis, type OwnRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';
import { tally } from './tally.ts';

let redis: OwnRedis;
let stack: Stack;

before(async () => {
  redis = await startOwnRedis(await mkdtemp(path.join(tmpdir(), 'makam-aof-')));
  stack = await startStack(redis.url);
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

test('queued jobs, records and finished metrics survive a Redis crash; the job finishes', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  Object.assign(request.hyperparameters, { epochs: 12, batch_size: 8 });
  const { body: running } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  tally.submitted++;
  await eventually('two finished epochs', async () => (await stack.json(`/v1/jobs/${running.id}/metrics`)).body.data.length >= 2, 120_000, 100);
  const metricsBefore = (await stack.json(`/v1/jobs/${running.id}/metrics`)).body.data;

  // Crash Redis; while it is down the API says so rather than hanging or failing with 500.
  const restarting = redis.crashAndRestart(3000);
  tally.faults++;
  await sleep(500);
  const during = await stack.api('/v1/jobs');
  assert.equal(during.status, 503);
  assert.equal(((await during.json()) as { error: { code: string } }).error.code, 'store_unavailable');
  await restarting;

  // A job submitted after the restart queues behind the first (one worker) and runs too.
  const { status, body: queued } = await eventually('the API to reconnect', async () => {
    const res = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...request, hyperparameters: { ...request.hyperparameters, epochs: 2 } }) });
    return res.status === 202 ? res : null;
  }, 30_000, 250);
  assert.equal(status, 202);
  tally.submitted++;

  for (const id of [running.id, queued.id]) {
    const job = await stack.finished(id, 420_000);
    if (job.status === 'succeeded') tally.finished++;
    else tally.lost++;
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  }
  const { body: after } = await stack.json(`/v1/jobs/${running.id}/metrics`);
  assert.deepEqual(after.data.slice(0, metricsBefore.length), metricsBefore, 'metrics stored before the crash are kept as they were');
  assert.deepEqual(after.data.map((p: { epoch: number }) => p.epoch), Array.from({ length: 12 }, (_, i) => i + 1), 'no epoch missing, none twice');
  assert.equal((await stack.json(`/v1/datasets/${upload.body.id}`)).status, 200, 'the dataset record survived');
}));
