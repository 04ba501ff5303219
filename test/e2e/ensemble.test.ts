// An ensemble through the REST API on the real stack: two finished jobs of different families
// (tfidf refit on train + validation, a tiny scratch transformer) on the sample data, then an ensemble of them, which the
// dispatcher runs on the worker as it runs a finetune job, the members' models sent up first. Its
// report has the shape of every job's plus the weights; its artifact, unpacked, holds the members
// and loads with its card's code in a fresh interpreter.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { PYTHON, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;
let datasetId: string;
const LABELS = ['arabesk', 'pop', 'rock', 'türkü'];

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url);
  datasetId = (await stack.uploadSample()).body.id;
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

async function submit(body: object): Promise<string> {
  const { status, body: job } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(status, 202, JSON.stringify(job));
  return job.id;
}

test('an ensemble of a tfidf and a scratch job reports on the test split with its weights, and its artifact loads as its card says', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const data = { test_fraction: 0.2, seed: 3 };
  // tfidf refit on train + validation (its default): the ensemble fits on its first model's validation probabilities.
  const tfidf = await submit({ kind: 'finetune', model: { family: 'tfidf' }, dataset: datasetId, hyperparameters: data });
  const scratch = await submit({ kind: 'finetune', model: { family: 'scratch' }, dataset: datasetId, hyperparameters: { ...data, epochs: 2, layers: 1, d_model: 32, heads: 2, ff_dim: 64, vocab_size: 300, max_length: 64 } });
  for (const id of [tfidf, scratch]) assert.equal((await stack.finished(id, 240_000)).status, 'succeeded', id);

  const id = await submit({ kind: 'ensemble', members: [tfidf, scratch] });
  const job = await stack.finished(id, 240_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const r = job.result;
  assert.equal(r.family, 'ensemble');
  assert.equal(r.evaluated_on, 'test');
  for (const k of ['accuracy', 'weighted_f1', 'macro_f1', 'majority_baseline_accuracy']) assert.equal(typeof r[k], 'number', k);
  assert.deepEqual(Object.keys(r.test.per_class).sort(), LABELS);
  assert.deepEqual(r.test.confusion_matrix.labels, LABELS);
  assert.equal(r.ensemble.method, 'average');
  assert.deepEqual(r.ensemble.members.map((m: { job_id: string; family: string; refit: boolean }) => [m.job_id, m.family, m.refit]), [[tfidf, 'tfidf', true], [scratch, 'scratch', false]]);
  const weights = r.ensemble.weights as number[];
  assert.ok(weights.every((w) => w >= 0) && Math.abs(weights.reduce((a, b) => a + b, 0) - 1) < 1e-9, `weights ${weights}`);
  // The splits are the members' own: the same number of test examples.
  const member = (await stack.json(`/v1/jobs/${tfidf}`)).body;
  assert.equal(r.test_examples, member.result.test_examples);
  assert.equal(member.result.refit.validation_probabilities, 'validation_probabilities.npy');
  assert.equal(r.ensemble.members[0].validation_accuracy, member.result.validation.accuracy, "the tfidf member's first model on validation");
  const metrics = (await stack.json(`/v1/jobs/${id}/metrics`)).body;
  assert.equal(metrics.data.length, 1, 'one validation point: the fit of the weights');

  const res = await stack.api(`/v1/jobs/${id}/artifacts/model`);
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), job.artifact.sha256);
  const dir = await mkdtemp(path.join(tmpdir(), 'makam-ensemble-'));
  const modelDir = path.join(dir, 'model');
  await writeFile(path.join(dir, 'model.tar.gz'), bytes);
  execFileSync('mkdir', ['-p', modelDir]);
  execFileSync('tar', ['xzf', path.join(dir, 'model.tar.gz'), '-C', modelDir]);
  assert.deepEqual((await readdir(path.join(modelDir, 'members'))).sort(), [scratch, tfidf].sort());
  const manifest = JSON.parse(await readFile(path.join(modelDir, 'ensemble.json'), 'utf8'));
  assert.deepEqual(manifest.weights, weights);

  // The card's loader, with only the model directory and the texts filled in, in an interpreter
  // that sees nothing of makam (-I: no user site, no PYTHONPATH).
  const card = await readFile(path.join(modelDir, 'README.md'), 'utf8');
  const code = /## Loading\n\n```python\n([\s\S]*?)```/.exec(card)![1]!
    .replace('d = "path/to/unpacked/model"', `d = ${JSON.stringify(modelDir)}`)
    .replace('texts = ["..."]', 'texts = ["Gurbet ellerde kader ağlatır", "Dans et bu gece sabaha kadar"]');
  const out = execFileSync(PYTHON, ['-I', '-c', `${code}\nimport json\nprint(json.dumps(labels))`], { cwd: dir, env: { PATH: '/usr/bin:/bin', HF_HUB_OFFLINE: '1', OMP_NUM_THREADS: '1' }, encoding: 'utf8' });
  const predicted = JSON.parse(out.trim().split('\n').at(-1)!) as string[];
  assert.equal(predicted.length, 2);
  for (const label of predicted) assert.ok(LABELS.includes(label), label);
}));
