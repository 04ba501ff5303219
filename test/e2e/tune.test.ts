// Tune jobs end to end: an Optuna study whose trials are training runs on two real Python workers,
// coordinated by the dispatcher, with the study in the same Redis. Trials overlap, the median
// pruner stops some, the best trial's model becomes the job's; a grid visits each point once; a
// worker killed mid-trial leaves no trial running and the study completes on the other.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { PYTHON, ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url, { workers: 2, dispatcherEnv: { MAKAM_TUNE_POLL_MS: '200', MAKAM_WORKER_RECONNECT_MS: '3000', MAKAM_GRPC_KEEPALIVE_MS: '1000' } });
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

interface Trial {
  number: number;
  job_id: string;
  status: string;
  state: string;
  params: Record<string, number>;
  value: number | null;
  intermediate_values: Array<{ epoch: number; value: number }>;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
}

async function submitTune(changes: (request: any) => void): Promise<string> {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/tune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  changes(request);
  const { status, body } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  assert.equal(status, 202, JSON.stringify(body));
  assert.equal(body.kind, 'tune');
  return body.id;
}

async function trialsOf(id: string): Promise<Trial[]> {
  const { status, body } = await stack.json(`/v1/jobs/${id}/trials`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.data;
}

test('a tune job runs 8 trials two at a time, prunes some, and its model is the best trial\'s', { timeout: 900_000 }, () => stack.withLogs(async () => {
  const id = await submitTune((r) => Object.assign(r.hyperparameters, { test_fraction: 0.2 }));
  const job = await stack.finished(id, 840_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const trials = await trialsOf(id);
  console.log(`tune: ${trials.map((t) => `#${t.number} ${t.state} ${t.value?.toFixed(4) ?? '-'} (${t.intermediate_values.length} epochs)`).join(', ')}`);
  assert.deepEqual(trials.map((t) => t.number), [0, 1, 2, 3, 4, 5, 6, 7]);
  for (const t of trials) {
    assert.ok(['succeeded', 'pruned', 'failed'].includes(t.status), `trial ${t.number} ended: ${t.status}`);
    assert.notEqual(t.state, 'running');
    const lr = t.params.learning_rate!;
    assert.ok(lr >= 1e-5 && lr <= 3e-3 && t.params.warmup_ratio! >= 0 && t.params.warmup_ratio! <= 0.3, `trial ${t.number} params in the space: ${JSON.stringify(t.params)}`);
    // Each trial is a job of its own, with its metric series.
    const { body: trialJob } = await stack.json(`/v1/jobs/${t.job_id}`);
    assert.equal(trialJob.kind, 'trial');
    assert.equal(trialJob.parent, id);
    assert.equal(trialJob.hyperparameters.learning_rate, lr);
    assert.ok(t.intermediate_values.length >= 1, `trial ${t.number} reported per epoch`);
  }
  // Two workers: at least two trials ran at the same time.
  const spans = trials.filter((t) => t.started_at && t.finished_at).map((t) => [Date.parse(t.started_at!), Date.parse(t.finished_at!)] as const);
  assert.ok(spans.some(([s1, e1], i) => spans.some(([s2, e2], j) => i !== j && s1 < e2 && s2 < e1)), 'two trials overlapped');
  const pruned = trials.filter((t) => t.state === 'pruned');
  assert.ok(pruned.length >= 1, 'the median pruner stopped at least one trial');
  for (const t of pruned) assert.ok(t.intermediate_values.length < 6, `pruned trial ${t.number} stopped before its last epoch`);

  assert.equal(job.study.complete + job.study.pruned + job.study.failed, 8);
  assert.equal(job.study.pruned, pruned.length);
  const complete = trials.filter((t) => t.state === 'complete');
  const best = complete.reduce((a, b) => (b.value! < a.value! ? b : a));
  assert.equal(job.best_trial.number, best.number);
  assert.equal(job.best_trial.value, best.value);
  assert.deepEqual(job.best_trial.params, best.params);
  if (complete.length >= 2) assert.deepEqual(Object.keys(job.importances ?? {}).sort(), ['learning_rate', 'warmup_ratio']);
  // The job's result is the best trial's, with its report on the test split.
  const { body: bestJob } = await stack.json(`/v1/jobs/${best.job_id}`);
  assert.deepEqual(job.result, bestJob.result);
  assert.equal(job.result.test.split, 'test');
  assert.deepEqual(job.artifact, bestJob.artifact);

  // The model downloads, loads and predicts label names.
  const res = await stack.api(`/v1/jobs/${id}/artifacts/model`);
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), job.artifact.sha256);
  const dir = await mkdtemp(path.join(tmpdir(), 'makam-tuned-'));
  await writeFile(path.join(dir, 'model.tar.gz'), bytes);
  execFileSync('mkdir', ['-p', path.join(dir, 'model')]);
  execFileSync('tar', ['xzf', path.join(dir, 'model.tar.gz'), '-C', path.join(dir, 'model')]);
  const script = `
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForSequenceClassification.from_pretrained(d).eval()
with torch.no_grad():
    logits = model(**tok(["kader gurbet ellerde ağlarım", "gitar sokak isyan"], return_tensors="pt", padding=True)).logits
print(json.dumps([model.config.id2label[i] for i in logits.argmax(-1).tolist()]))
`;
  const predicted: string[] = JSON.parse(execFileSync(PYTHON, ['-c', script, path.join(dir, 'model')], { encoding: 'utf8' }).trim().split('\n').at(-1)!);
  for (const p of predicted) assert.ok(['arabesk', 'pop', 'rock', 'türkü'].includes(p), p);
}));

test('a grid search visits every grid point exactly once', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const id = await submitTune((r) => {
    r.hyperparameters.epochs = 2;
    r.search = { space: { learning_rate: { type: 'categorical', choices: [0.001, 0.003] }, warmup_ratio: { type: 'float', low: 0, high: 0.2, step: 0.1 } }, sampler: 'grid', pruner: 'none', trials: 10, parallelism: 2 };
  });
  const { body: submitted } = await stack.json(`/v1/jobs/${id}`);
  assert.equal(submitted.search.trials, 6, 'a grid smaller than trials runs each point once');
  const job = await stack.finished(id, 540_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const points = (await trialsOf(id)).map((t) => `${t.params.learning_rate}/${t.params.warmup_ratio}`).sort();
  assert.deepEqual(points, ['0.001/0', '0.001/0.1', '0.001/0.2', '0.003/0', '0.003/0.1', '0.003/0.2']);
}));

test('with cv_folds each trial\'s value is the mean over its folds, not its one validation split', { timeout: 600_000 }, () => stack.withLogs(async () => {
  // A keyword per label, a quarter of the texts with another label's keyword: no split scores 1.0.
  const words = ['elma', 'armut', 'kiraz'];
  const fillers = ['bu akşam geldi', 'dün yedik', 'pazarda var', 'annem aldı', 'sabah topladık', 'sepette kaldı', 'yine istedik'];
  const rows = Array.from({ length: 120 }, (_, i) => JSON.stringify({ text: `${words[i % 4 ? i % 3 : (i + 1) % 3]} ${fillers[i % 7]} ${i}`, label: `l${i % 3}` }));
  const upload = await stack.json('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: rows.join('\n') });
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const id = await submitTune((r) => {
    r.dataset = upload.body.id;
    r.model = { family: 'tfidf' };
    r.hyperparameters = { cv_folds: 3, seed: 42 };
    r.search = { space: { C: { type: 'categorical', choices: [0.1, 1] } }, objective: { metric: 'macro_f1' }, sampler: 'grid', pruner: 'none', trials: 2, parallelism: 2 };
  });
  const job = await stack.finished(id, 540_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const trials = await trialsOf(id);
  assert.equal(trials.length, 2);
  const values: Array<[number, number]> = [];
  for (const t of trials) {
    const { body: run } = await stack.json(`/v1/jobs/${t.job_id}`);
    const cv = run.result.cross_validation;
    assert.equal(cv.folds, 3);
    assert.equal(cv.per_fold.length, 3);
    assert.equal(t.value, cv.mean.macro_f1, `trial ${t.number}: the study was told the folds' mean`);
    values.push([cv.mean.macro_f1, run.result.validation.macro_f1]);
  }
  assert.ok(values.some(([folds, split]) => folds !== split), 'the folds\' mean differs from the one split\'s figure, so the test tells them apart');
}));

test('cancelling a tune job stops every running trial and leaves the study readable', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const id = await submitTune((r) => {
    r.hyperparameters.epochs = 1000; // never done before the cancel, even on a fast machine
    r.search.pruner = 'none';
  });
  await eventually('two trials past their first epoch', async () => (await trialsOf(id)).filter((t) => t.intermediate_values.length > 0).length >= 2, 300_000, 250);
  const { status, body } = await stack.json(`/v1/jobs/${id}/cancel`, { method: 'POST' });
  assert.equal(status, 200);
  assert.ok(['cancelling', 'cancelled'].includes(body.status));
  const job = await stack.finished(id, 300_000);
  assert.equal(job.status, 'cancelled');
  const trials = await trialsOf(id);
  assert.equal(trials.length, 2, 'no trial started after the cancel');
  for (const t of trials) {
    assert.equal(t.status, 'cancelled', `trial ${t.number}`);
    assert.equal(t.state, 'fail');
    assert.ok(t.intermediate_values.length >= 1, 'its metrics stay readable');
  }
  assert.deepEqual({ ...job.study, best: null }, { trials: 8, complete: 0, pruned: 0, failed: 2, running: 0, best: null });
}));

// Last: it leaves the second worker dead.
test('a worker killed mid-trial leaves no trial running, and the study completes on the other', { timeout: 900_000 }, () => stack.withLogs(async () => {
  const id = await submitTune((r) => {
    r.hyperparameters.epochs = 25; // still training when the worker dies (after their first epoch), even on a fast machine
    r.search.trials = 3; // the third starts after the kill, on the worker left
    r.search.pruner = 'none';
  });
  // Both workers busy with a trial, then one dies.
  const running = await eventually('two trials training', async () => {
    const trials = await trialsOf(id);
    const busy = [];
    for (const t of trials) {
      const { body } = await stack.json(`/v1/jobs/${t.job_id}`);
      if (body.status === 'running' && body.progress?.step > 0) busy.push(body);
    }
    return busy.length >= 2 ? busy : null;
  }, 300_000, 250);
  const second = stack.procs.find((p) => p.name === 'worker2')!;
  const victim = running.find((j: { worker: string }) => j.worker !== stack.workerAddress)!;
  second.child.kill('SIGKILL');

  const job = await stack.finished(id, 840_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const trials = await trialsOf(id);
  assert.equal(trials.length, 3);
  for (const t of trials) assert.ok(['complete', 'fail'].includes(t.state) && ['succeeded', 'failed'].includes(t.status), `trial ${t.number}: ${t.status}/${t.state}`);
  const { body: retried } = await stack.json(`/v1/jobs/${victim.id}`);
  assert.equal(retried.status, 'succeeded', `the killed trial was retried on the other worker: ${JSON.stringify(retried.error)}`);
  assert.ok(retried.attempts >= 2);
  assert.equal(retried.worker, stack.workerAddress);
  assert.equal(job.study.complete, 3);
  assert.equal(job.study.running, 0);
}));
