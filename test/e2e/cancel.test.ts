// Cancelling through the API stops the training process on the worker for real.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url);
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it has exited all the same.
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('a running job is cancelled within seconds and its training process exits', { timeout: 180_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  request.hyperparameters.epochs = 100; // far longer than the test waits
  const { body: job } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });

  // The training process announces its pid in the `started` event; wait until it has made progress.
  const pid = await eventually(
    'the run to start training',
    async () => {
      const { body } = await stack.json(`/v1/jobs/${job.id}/events?limit=1000`);
      const started = body.data.find((e: { type: string }) => e.type === 'started');
      const progressed = body.data.some((e: { type: string }) => e.type === 'progress');
      return started && progressed ? (started.data.pid as number) : null;
    },
    120_000,
  );
  assert.ok(alive(pid), 'the training process runs before the cancel');

  const t0 = Date.now();
  const cancel = await stack.json(`/v1/jobs/${job.id}/cancel`, { method: 'POST' });
  assert.equal(cancel.status, 200);
  assert.ok(['cancelling', 'cancelled'].includes(cancel.body.status));
  const done = await eventually('the job to be cancelled', async () => {
    const { body } = await stack.json(`/v1/jobs/${job.id}`);
    return body.status === 'cancelled' ? body : null;
  }, 30_000, 100);
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(seconds < 15, `cancelled after ${seconds} s`);
  assert.ok(done.finished_at);
  await eventually('the training process to exit', async () => !alive(pid), 10_000, 100);

  // The job's record stays cancelled and nothing can be downloaded.
  const art = await stack.api(`/v1/jobs/${job.id}/artifacts/model`);
  assert.equal(art.status, 409);
}));
