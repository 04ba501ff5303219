// A worker that stops answering (SIGSTOP: a hung process, as a network cut looks from the
// dispatcher) is noticed by keepalive and deadlines; its job moves on within a bounded time. When
// the worker comes back, the next attempt finds the run (still going, or finished meanwhile by the
// training child the hang did not stop) and re-attaches to it instead of training again.
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
  stack = await startStack(redis.url, { dispatcherEnv: { MAKAM_GRPC_KEEPALIVE_MS: '1000', MAKAM_WORKER_RECONNECT_MS: '3000' } });
});
after(async () => {
  stack?.procs.find((p) => p.name === 'worker')?.child.kill('SIGCONT');
  await stack?.stop();
  await redis?.stop();
});

async function submit(epochs: number): Promise<string> {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  Object.assign(request.hyperparameters, { epochs, batch_size: 8 });
  const { body: submitted } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  tally.submitted++;
  await eventually('training to be under way', async () => (await stack.json(`/v1/jobs/${submitted.id}`)).body.progress?.step > 0, 120_000, 100);
  return submitted.id;
}

async function movedOn(jobId: string): Promise<{ error: { code: string } }> {
  return eventually('the job to move on from the hung worker', async () => {
    const { body } = await stack.json(`/v1/jobs/${jobId}`);
    return body.status === 'queued' && body.error ? body : null;
  }, 60_000, 200);
}

/** One `started` event, and one metric point per epoch: the run trained once. */
async function assertTrainedOnce(jobId: string, epochs: number): Promise<void> {
  const job = await stack.finished(jobId, 420_000);
  if (job.status === 'succeeded') tally.finished++;
  else tally.lost++;
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(job.attempts, 2);
  const { body: events } = await stack.json(`/v1/jobs/${jobId}/events?limit=1000`);
  assert.equal(events.data.filter((e: { type: string }) => e.type === 'started').length, 1, 'the run was re-attached, not started again');
  const { body: metrics } = await stack.json(`/v1/jobs/${jobId}/metrics`);
  assert.deepEqual(metrics.data.map((p: { epoch: number }) => p.epoch), Array.from({ length: epochs }, (_, i) => i + 1), 'one metric series, no gap, no duplicate');
}

test('a hung worker is detected, the job moves on, and the run is re-attached when the worker returns', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const jobId = await submit(16);
  const worker = stack.procs.find((p) => p.name === 'worker')!;
  worker.child.kill('SIGSTOP');
  tally.faults++;
  const t0 = Date.now();
  const moved = await movedOn(jobId);
  const seconds = (Date.now() - t0) / 1000;
  console.log(`hung worker noticed and job requeued after ${seconds.toFixed(1)} s`);
  assert.equal(moved.error.code, 'worker_unreachable');
  assert.ok(seconds < 45, `bounded: ${seconds} s`);

  worker.child.kill('SIGCONT');
  await assertTrainedOnce(jobId, 16);
}));

test('a run that finishes while its worker hangs is collected when the worker returns, not trained again', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const jobId = await submit(20); // still training when the worker is stopped, even on a fast machine
  const worker = stack.procs.find((p) => p.name === 'worker')!;
  worker.child.kill('SIGSTOP');
  tally.faults++;
  await movedOn(jobId);
  // The server is stopped, its training child is not: wait until the child has written the end.
  const eventsFile = path.join(stack.workerStateDir, 'runs', jobId, 'events.jsonl');
  await eventually('the training child to finish the run', async () => (await readFile(eventsFile, 'utf8').catch(() => '')).includes('"finished"'), 300_000, 250);
  worker.child.kill('SIGCONT');
  await assertTrainedOnce(jobId, 20);
}));
