// The whole path through real processes: API + dispatcher + Python worker (gRPC) + Redis.
// Upload, submit, poll to succeeded, read metrics and events, download, verify the sha256,
// unpack, load in Python with from_pretrained and predict label names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { PYTHON, ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

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

test('a fine-tuning job runs end to end and its model predicts label names', { timeout: 240_000 }, () => stack.withLogs(async () => {
  const upload = await stack.json('/v1/datasets?name=lyrics-sample', {
    method: 'POST',
    headers: { 'content-type': 'application/jsonl' },
    body: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')),
  });
  assert.equal(upload.status, 201, JSON.stringify(upload.body));

  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  request.hyperparameters.epochs = 4;
  const submitted = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  assert.equal(submitted.body.status, 'queued');
  const id: string = submitted.body.id;

  const statuses = new Set<string>();
  const job = await eventually(
    'the job to finish',
    async () => {
      const { body } = await stack.json(`/v1/jobs/${id}`);
      statuses.add(body.status);
      return ['succeeded', 'failed', 'cancelled'].includes(body.status) ? body : null;
    },
    180_000,
    250,
  );
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.ok(statuses.has('running') || statuses.has('queued'));
  assert.deepEqual(job.progress, { epoch: 4, step: job.progress.total_steps, total_steps: job.progress.total_steps });
  assert.ok(job.started_at && job.finished_at && job.created_at <= job.started_at && job.started_at <= job.finished_at);
  assert.equal(job.attempts, 1);
  assert.ok(job.metrics.accuracy > 0.25, `validation accuracy ${job.metrics.accuracy} should beat chance on the sample`);

  // One metric point per epoch, in order.
  const metrics = await stack.json(`/v1/jobs/${id}/metrics`);
  assert.deepEqual(metrics.body.data.map((p: { epoch: number }) => p.epoch), [1, 2, 3, 4]);
  for (const p of metrics.body.data) for (const k of ['train_loss', 'validation_loss', 'accuracy', 'weighted_f1', 'macro_f1']) assert.equal(typeof p[k], 'number', k);

  // The event log pages by cursor and tells the story in order.
  const types: string[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: { body: { data: Array<{ type: string; data: { status?: string } }>; next_cursor: string | null } } = await stack.json(`/v1/jobs/${id}/events?limit=5${cursor ? `&after=${cursor}` : ''}`);
    if (page.body.data.length === 0) break;
    types.push(...page.body.data.map((e) => (e.type === 'status' ? `status:${e.data.status}` : e.type)));
    cursor = page.body.next_cursor;
  }
  assert.equal(types[0], 'status:queued');
  assert.equal(types[1], 'status:running');
  assert.ok(types.indexOf('started') > 1);
  assert.equal(types.filter((x) => x === 'metrics').length, 4);
  assert.equal(types.at(-1), 'status:succeeded');

  // Download: the sha256 header matches the bytes.
  const res = await stack.api(`/v1/jobs/${id}/artifacts/model`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/gzip');
  const bytes = Buffer.from(await res.arrayBuffer());
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.equal(res.headers.get('x-makam-sha256'), sha);
  assert.equal(job.artifact.sha256, sha);

  // Unpacked, transformers loads it and predicts label names.
  const dir = await mkdtemp(path.join(tmpdir(), 'makam-model-'));
  await writeFile(path.join(dir, 'model.tar.gz'), bytes);
  const modelDir = path.join(dir, 'model');
  execFileSync('mkdir', ['-p', modelDir]);
  execFileSync('tar', ['xzf', path.join(dir, 'model.tar.gz'), '-C', modelDir]);
  const files = await readdir(modelDir);
  for (const f of ['config.json', 'model.safetensors', 'labels.json', 'metrics.json', 'tokenizer.json']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
  const script = `
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForSequenceClassification.from_pretrained(d).eval()
texts = ["kader gurbet ellerde ağlarım", "gitar sokak isyan elektrik gece", "dans et yaz aşkı kalbim", "dağlar yayla bozkır sazım"]
with torch.no_grad():
    logits = model(**tok(texts, return_tensors="pt", padding=True, truncation=True)).logits
print(json.dumps({"labels": json.load(open(d + "/labels.json")), "pred": [model.config.id2label[i] for i in logits.argmax(-1).tolist()]}))
`;
  const out = JSON.parse(execFileSync(PYTHON, ['-c', script, modelDir], { encoding: 'utf8' }).trim().split('\n').at(-1)!);
  assert.deepEqual(out.labels, ['arabesk', 'pop', 'rock', 'türkü']);
  for (const p of out.pred) assert.ok(out.labels.includes(p), `prediction ${p} is a label name`);
}));

test('a job whose model cannot be found fails once, with the worker\'s error code, and is not retried', { timeout: 120_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const { body: submitted } = await stack.json('/v1/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'finetune', model: { family: 'encoder', name: `${stack.modelsDir}/nonexistent/berturk` }, dataset: upload.body.id, hyperparameters: { epochs: 1 } }),
  });
  const job = await stack.finished(submitted.id, 90_000);
  assert.equal(job.status, 'failed');
  assert.equal(job.error.code, 'model_not_found', JSON.stringify(job.error));
  assert.match(job.error.message, /nonexistent/);
  assert.equal(job.attempts, 1, 'bad input is not retried');
  const art = await stack.api(`/v1/jobs/${submitted.id}/artifacts/model`);
  assert.equal(art.status, 409);
}));

test('a training process killed mid-run is retried from its last checkpoint and the job still succeeds, its metric series whole', { timeout: 240_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  request.hyperparameters.epochs = 8;
  const { body: submitted } = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  const pid = await eventually('the first attempt to train', async () => {
    const { body } = await stack.json(`/v1/jobs/${submitted.id}/events?limit=1000`);
    const started = body.data.find((e: { type: string }) => e.type === 'started');
    // Once a checkpoint is in the artifact store, the training process is killed.
    return started && body.data.some((e: { type: string }) => e.type === 'checkpoint') ? (started.data.pid as number) : null;
  }, 120_000, 100);
  process.kill(pid, 'SIGKILL'); // as the OOM killer would
  const job = await stack.finished(submitted.id, 180_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.equal(job.attempts, 2);
  const { body: events } = await stack.json(`/v1/jobs/${submitted.id}/events?limit=1000`);
  const statuses = events.data.filter((e: { type: string }) => e.type === 'status').map((e: { data: { status: string } }) => e.data.status);
  assert.deepEqual(statuses, ['queued', 'running', 'queued', 'running', 'succeeded']);
  const retried = events.data.find((e: { type: string; data: { status?: string } }) => e.type === 'status' && e.data.status === 'queued' && e !== events.data[0]);
  assert.match(retried.data.message, /worker_crashed/, 'the retry names the fault');
  // Attempt 2 resumes from the last checkpoint the dispatcher pulled before the kill (if any):
  // the series keeps attempt 1's epochs up to it and attempt 2's after, each epoch once.
  const started = events.data.filter((e: { type: string }) => e.type === 'started');
  assert.equal(started.length, 2);
  const resumedFrom: number = started[1].data.resumed_from_epoch ?? 0;
  const checkpoints = events.data.filter((e: { type: string; data: { attempt: number } }) => e.type === 'checkpoint' && e.data.attempt === 1);
  assert.ok(resumedFrom >= 1, 'the retry resumed from a checkpoint');
  assert.equal(resumedFrom, checkpoints.at(-1)?.data.epoch, 'the retry resumed from the last checkpoint stored');
  const { body: metrics } = await stack.json(`/v1/jobs/${submitted.id}/metrics`);
  assert.deepEqual(
    metrics.data.map((p: { epoch: number; attempt: number }) => [p.epoch, p.attempt]),
    [1, 2, 3, 4, 5, 6, 7, 8].map((e) => [e, e <= resumedFrom ? 1 : 2]),
  );
}));
