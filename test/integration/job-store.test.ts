// The job store's Lua scripts against a real Redis.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { JobStore, type FinetuneJob, type JobEvent } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;
let store: JobStore;
let keys: ReturnType<typeof redisKeys>;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
  keys = redisKeys(uniquePrefix());
  store = new JobStore(redis, keys);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const record = (fields: Partial<FinetuneJob> = {}): FinetuneJob => {
  const now = new Date().toISOString();
  return {
    id: newJobId(), object: 'job', tenant: 't1', kind: 'finetune', status: 'queued', model: { family: 'encoder', name: 'x' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null,
    hyperparameters: {}, resource_class: 'cpu', estimate: null, progress: null, metrics: null, result: null, artifact: null, error: null, attempts: 0, worker: null,
    cancel_requested: false, created_at: now, started_at: null, finished_at: null, updated_at: now, ...fields,
  };
};

test('a new record is stored byte for byte: every field as encoded, whatever characters its strings hold', async () => {
  // Quotes, backslashes, control and line-separator characters, Turkish letters, astral symbols and
  // escaped escapes, through lua/createJob-8.lua and back.
  const tricky = ['"quoted" \\ back\\slash', 'line\nbreak\ttab\u0000nul\u2028sep', 'çğıöşü İĞŞ', '🎵 şarkı', '\\u0041 is not A', ''];
  const job = record({ hyperparameters: { labels: tricky, nested: { [tricky[2]!]: tricky[3] } }, model: { family: 'encoder', name: tricky[0]! } });
  await store.create(job);
  assert.deepEqual(await store.get(job.id), job);
  const stored = await redis.hgetall(keys.job(job.id));
  assert.equal(stored.hyperparameters, JSON.stringify(job.hyperparameters));
  assert.equal(stored.model, JSON.stringify(job.model));
});

test('transitions follow the status machine and log a status event', async () => {
  const job = record();
  await store.create(job);
  assert.deepEqual(await store.transition(job.id, 'succeeded'), { ok: false, from: 'queued' });
  assert.deepEqual(await store.transition(job.id, 'running', { worker: 'w:1' }), { ok: true, from: 'queued' });
  assert.deepEqual(await store.transition(job.id, 'succeeded', { finished_at: 'now' }), { ok: true, from: 'running' });
  // A late cancel or retry cannot revive a finished job.
  assert.equal((await store.transition(job.id, 'queued')).ok, false);
  assert.equal((await store.transition(job.id, 'cancelled')).ok, false);
  const got = await store.get(job.id);
  assert.equal(got?.status, 'succeeded');
  assert.equal(got?.worker, 'w:1');
  const events = await store.events(job.id, undefined, 10);
  assert.deepEqual(events.data.map((e) => e.data.type === 'status' && e.data.status), ['queued', 'running', 'succeeded']);
});

test('a job\'s end is one step: its status, status event and end announcement in one script call', async () => {
  const job = record();
  await store.create(job);
  await store.transition(job.id, 'running');
  const monitor = await redis.monitor();
  const seen: Array<{ argv: string[]; source: string }> = [];
  monitor.on('monitor', (_time: string, argv: string[], source: string) => seen.push({ argv, source }));
  assert.deepEqual(await store.transition(job.id, 'succeeded', { finished_at: 'now' }), { ok: true, from: 'running' });
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  // What the client sent (a script's own calls come from source 'lua'): one script call, so a
  // process that dies after it cannot leave the end unannounced, nor announce a job not ended.
  const sent = seen.filter((c) => c.source !== 'lua').map((c) => c.argv[0]!.toLowerCase());
  assert.deepEqual(sent.filter((c) => c !== 'eval'), ['evalsha'], `the client sent:\n${sent.join('\n')}`);
  const inScript = seen.filter((c) => c.source === 'lua').map((c) => `${c.argv[0]!.toUpperCase()} ${c.argv[1]}`);
  assert.ok(inScript.includes(`XADD ${keys.jobsFinished}`), `the announcement inside the script:\n${inScript.join('\n')}`);
  assert.ok(inScript.includes(`XADD ${keys.jobEvents(job.id)}`), 'the status event inside the script');
  const announced = (await redis.xrange(keys.jobsFinished, '-', '+')).filter(([, f]) => f[1] === job.id);
  assert.deepEqual(announced.map(([, f]) => f), [['job', job.id, 'status', 'succeeded']]);
});

test('worker events are stored once each, even when a re-attached watcher resends them', async () => {
  const job = record();
  await store.create(job);
  const metric = (seq: number) => ({ type: 'metrics' as const, attempt: 1, epoch: seq, step: seq * 10, train_loss: 1, validation_loss: 1, accuracy: 0.5, weighted_f1: 0.5, macro_f1: 0.5 });
  assert.equal(await store.appendWorkerEvent(job.id, 1, metric(1), { metrics: metric(1) }), true);
  assert.equal(await store.appendWorkerEvent(job.id, 2, metric(2), { metrics: metric(2) }), true);
  assert.equal(await store.appendWorkerEvent(job.id, 2, metric(2)), false, 'a resent event is a duplicate');
  assert.equal(await store.appendWorkerEvent(job.id, 1, metric(1)), false);
  assert.equal(await store.workerSeq(job.id), 2);
  const series = await store.metrics(job.id);
  assert.deepEqual(series.map((p) => p.step), [10, 20]);
  assert.equal((await store.get(job.id))?.metrics?.epoch, 2);
});

test('a job leaves its tenant\'s active set when it ends, and only then', async () => {
  const job = record();
  await store.create(job);
  const active = () => redis.smembers(keys.tenantActive('t1'));
  assert.ok((await active()).includes(job.id));
  await store.transition(job.id, 'running');
  assert.ok((await active()).includes(job.id));
  await store.transition(job.id, 'failed');
  assert.ok(!(await active()).includes(job.id));
});

test('the metric series keeps one point per step across attempts: a resumed attempt replaces only what it redid', async () => {
  const point = (attempt: number, step: number) => ({ type: 'metrics' as const, attempt, epoch: step / 10, step, train_loss: 1, validation_loss: 1, accuracy: 0.5, weighted_f1: 0.5, macro_f1: 0.5 });
  const resumed = record();
  await store.create(resumed);
  let seq = 0;
  for (const p of [point(1, 10), point(1, 20), point(1, 30)]) await store.appendWorkerEvent(resumed.id, ++seq, p);
  await store.startRun(resumed.id, 2);
  seq = 0;
  // Attempt 2 resumed from the checkpoint after step 20: it redoes step 30 and goes on.
  for (const p of [point(2, 30), point(2, 40)]) await store.appendWorkerEvent(resumed.id, ++seq, p);
  assert.deepEqual((await store.metrics(resumed.id)).map((p) => [p.step, p.attempt]), [[10, 1], [20, 1], [30, 2], [40, 2]]);

  const restarted = record();
  await store.create(restarted);
  seq = 0;
  for (const p of [point(1, 10), point(1, 20)]) await store.appendWorkerEvent(restarted.id, ++seq, p);
  await store.startRun(restarted.id, 2);
  seq = 0;
  for (const p of [point(2, 10), point(2, 20), point(2, 30)]) await store.appendWorkerEvent(restarted.id, ++seq, p);
  assert.deepEqual((await store.metrics(restarted.id)).map((p) => [p.step, p.attempt]), [[10, 2], [20, 2], [30, 2]]);
});

// With masked-LM points (issue 13) the phase counts its own steps, so a retry that resumes inside the
// phase replaces the phase's redone points and every fine-tune point after them.
test('a retry resumed inside the masked-LM phase replaces the points it redoes, fine-tune ones included', async () => {
  const mlm = (attempt: number, epoch: number): JobEvent => ({ type: 'metrics', attempt, phase: 'mlm', epoch, step: epoch * 50, mlm_loss: 5 - epoch });
  const tuned = (attempt: number, epoch: number): JobEvent => ({ type: 'metrics', attempt, epoch, step: epoch * 10, train_loss: 1, validation_loss: 1, accuracy: 0.5, weighted_f1: 0.5, macro_f1: 0.5 });
  const job = record({ model: { family: 'scratch' }, unlabeled_dataset: 'ds_u', hyperparameters: { mlm_epochs: 3 } });
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

test('event pages resume after their cursor', async () => {
  const job = record();
  await store.create(job);
  for (let i = 1; i <= 5; i++) await store.appendEvent(job.id, { type: 'log', level: 'info', message: `line ${i}` });
  const first = await store.events(job.id, undefined, 3);
  const second = await store.events(job.id, first.next_cursor!, 3);
  const messages = [...first.data, ...second.data].map((e) => (e.data.type === 'log' ? e.data.message : e.data.type));
  assert.deepEqual(messages, ['status', 'line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
  const empty = await store.events(job.id, second.next_cursor!, 3);
  assert.deepEqual(empty.data, []);
  assert.equal(empty.next_cursor, second.next_cursor, 'an empty page keeps the cursor');
});
