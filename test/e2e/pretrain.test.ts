// The masked-LM phase through the real stack (issue 13): a text-only dataset uploaded like any
// other, a scratch job with mlm_epochs and unlabeled_dataset that reports mlm_loss per MLM epoch
// (events and metric series) before fine-tuning and succeeds; and the refusals, each naming its field.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let stack: Stack;
let labelled: string;
let unlabeled: string;

const SCRATCH = { layers: 1, d_model: 32, heads: 2, ff_dim: 64, vocab_size: 300, max_length: 64, epochs: 1 };

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url);
  labelled = (await stack.uploadSample()).body.id;
  // The sample's texts without their labels stand for the users' unlabelled text.
  const texts = (await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8')).trim().split('\n')
    .map((line) => JSON.stringify({ text: `${(JSON.parse(line) as { text: string }).text} tekrar` })).join('\n');
  const upload = await stack.json('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: texts });
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  assert.deepEqual(upload.body.labels, []);
  unlabeled = upload.body.id;
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

const submit = (body: object) => stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', ...body }) });

test('a scratch job with mlm_epochs and an unlabeled dataset reports mlm_loss per MLM epoch, then fine-tunes and succeeds', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const { status, body } = await submit({ model: { family: 'scratch' }, dataset: labelled, unlabeled_dataset: unlabeled, hyperparameters: { ...SCRATCH, mlm_epochs: 2 } });
  assert.equal(status, 202, JSON.stringify(body));
  assert.equal(body.unlabeled_dataset, unlabeled);
  const job = await stack.finished(body.id, 240_000);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const events = (await stack.json(`/v1/jobs/${job.id}/events?limit=1000`)).body.data.map((e: any) => e.data);
  const mlm = events.filter((e: any) => e.type === 'metrics' && e.phase === 'mlm');
  assert.deepEqual(mlm.map((e: any) => e.epoch), [1, 2]);
  for (const e of mlm) assert.ok(Number.isFinite(e.mlm_loss) && e.mlm_loss > 0, JSON.stringify(e));
  const series = (await stack.json(`/v1/jobs/${job.id}/metrics`)).body.data;
  assert.deepEqual(series.map((p: any) => p.phase ?? 'finetune'), ['mlm', 'mlm', 'finetune']);
  assert.equal(job.metrics.phase, undefined, 'the latest metrics stay the validation ones');
  assert.equal(typeof job.metrics.accuracy, 'number');
  const card = await stack.api(`/v1/jobs/${job.id}/artifacts/model/files/README.md`);
  assert.match(await card.text(), /masked-LM pretraining for 2 epoch\(s\)/);
}));

test('while the masked-LM phase runs, the job record says so: its progress carries phase "mlm" and counts that phase', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const { status, body } = await submit({ model: { family: 'scratch' }, dataset: labelled, hyperparameters: { ...SCRATCH, mlm_epochs: 500 } });
  assert.equal(status, 202, JSON.stringify(body));
  const progress = await eventually('MLM progress in the job record', async () => {
    const { body: job } = await stack.json(`/v1/jobs/${body.id}`);
    return job.progress?.phase === 'mlm' ? job.progress : null;
  }, 240_000, 100);
  assert.ok(progress.step >= 1 && progress.total_steps > progress.step, JSON.stringify(progress));
  assert.ok(progress.epoch >= 1 && progress.epoch <= 500, JSON.stringify(progress));
  assert.equal((await stack.json(`/v1/jobs/${body.id}/cancel`, { method: 'POST' })).status, 200);
  assert.equal((await stack.finished(body.id, 120_000)).status, 'cancelled');
}));

test('refusals name the field and the fix', { timeout: 60_000 }, () => stack.withLogs(async () => {
  const cases: Array<[object, string]> = [
    [{ model: { family: 'scratch' }, dataset: unlabeled, hyperparameters: SCRATCH }, 'dataset'],
    [{ model: { family: 'scratch' }, dataset: labelled, validation_dataset: unlabeled, hyperparameters: SCRATCH }, 'validation_dataset'],
    [{ model: { family: 'scratch' }, dataset: labelled, test_dataset: unlabeled, hyperparameters: SCRATCH }, 'test_dataset'],
    [{ model: { family: 'scratch' }, dataset: labelled, unlabeled_dataset: unlabeled, hyperparameters: SCRATCH }, 'unlabeled_dataset'],
    [{ model: { family: 'tfidf' }, dataset: labelled, unlabeled_dataset: unlabeled }, 'unlabeled_dataset'],
  ];
  for (const [body, param] of cases) {
    const { status, body: answer } = await submit(body);
    assert.equal(status, 400, JSON.stringify(answer));
    assert.equal(answer.error.param, param, JSON.stringify(answer));
  }
  const off = await submit(cases[3]![0]);
  assert.match(off.body.error.message, /set mlm_epochs to 1 or more/);
}));
