// The API against a real Redis (BullMQ's Lua scripts rule out mocks), called with inject.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { ROOT } from '../support/stack.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let redis: TestRedis;
let app: FastifyInstance;
let datasetId: string;
let prefix: string;

before(async () => {
  redis = await startRedis();
  prefix = uniquePrefix();
  const config = loadApiConfig({
    REDIS_URL: redis.url,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-api-')),
    MAKAM_MAX_DATASET_BYTES: '100000',
  });
  app = await buildApp(config);
  const res = await app.inject({ method: 'POST', url: '/v1/datasets?name=sample', headers: { 'content-type': 'application/jsonl' }, payload: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')) });
  assert.equal(res.statusCode, 201, res.body);
  datasetId = res.json().id;
});

after(async () => {
  await app?.close();
  await redis?.stop();
});

const tinyJob = (extra: Record<string, unknown> = {}) => ({
  kind: 'finetune',
  model: { family: 'encoder', config: { model_type: 'bert', hidden_size: 32 } },
  dataset: datasetId,
  ...extra,
});

describe('datasets', () => {
  test('upload answers 201 with id, rows, labels and counts; GET returns the same', async () => {
    const csv = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.csv'));
    const res = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'text/csv' }, payload: csv });
    assert.equal(res.statusCode, 201, res.body);
    const ds = res.json();
    assert.match(ds.id, /^ds_/);
    assert.equal(ds.rows, 240);
    assert.deepEqual(ds.labels, ['arabesk', 'pop', 'rock', 'türkü']);
    assert.deepEqual(ds.label_counts, { arabesk: 90, pop: 60, rock: 50, türkü: 40 });
    const got = await app.inject({ method: 'GET', url: `/v1/datasets/${ds.id}` });
    assert.deepEqual(got.json(), ds);
  });

  test('an unknown content type is refused with 415 naming the accepted ones', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/xml' }, payload: '<x/>' });
    assert.equal(res.statusCode, 415);
    assert.match(res.json().error.message, /application\/jsonl or text\/csv/);
  });

  test('an upload over the size limit is refused with 413', async () => {
    const big = '{"text":"uzun bir satır","label":"a"}\n'.repeat(5000);
    const res = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl' }, payload: big });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'dataset_too_large');
  });

  test('a missing or malformed id answers 404 / 400 in the error shape', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v1/datasets/ds_01m8g9p25765rnqh0yh6mpy6az' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'not_found');
    const bad = await app.inject({ method: 'GET', url: '/v1/datasets/..%2F..%2Fetc' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.param, 'params.id');
  });
});

describe('jobs', () => {
  test('submit answers 202 queued with every default filled in and a BullMQ job under the same id', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/jobs', payload: tinyJob({ hyperparameters: { epochs: 2 } }) });
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.match(job.id, /^job_/);
    assert.equal(job.status, 'queued');
    assert.equal(job.resource_class, 'cpu');
    assert.deepEqual(job.hyperparameters, { epochs: 2, batch_size: 16, learning_rate: 5e-5, max_length: 128, seed: 42, warmup_ratio: 0.1, weight_decay: 0.01, max_grad_norm: 1, validation_fraction: 0.1 });
    const queued = await app.queues.get('cpu')!.getJob(job.id);
    assert.ok(queued, 'the BullMQ job id is the makam job id');
    assert.deepEqual(queued.data, { jobId: job.id });
    const got = await app.inject({ method: 'GET', url: `/v1/jobs/${job.id}` });
    assert.equal(got.json().status, 'queued');
    const events = await app.inject({ method: 'GET', url: `/v1/jobs/${job.id}/events` });
    assert.deepEqual(events.json().data.map((e: { type: string; data: { status: string } }) => [e.type, e.data.status]), [['status', 'queued']]);
  });

  test('bad requests get a 400 naming the field and what is accepted', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [tinyJob({ hyperparameters: { epochs: 0 } }), 'hyperparameters.epochs', />= 1/],
      [tinyJob({ hyperparameters: { epoch: 3 } }), 'hyperparameters.epoch', /accepted fields: epochs, batch_size/],
      [tinyJob({ hyperparameters: { max_length: 4096 } }), 'hyperparameters.max_length', /<= 512/],
      [{ ...tinyJob(), kind: 'pretrain' }, 'kind', /finetune/],
      [{ kind: 'finetune', model: { family: 'encoder', name: 'x' } }, 'dataset', /required/],
      [tinyJob({ model: { family: 'encoder' } }), 'model', /exactly one of 'model.name'/],
      [tinyJob({ model: { family: 'encoder', name: 'a', config: { model_type: 'bert' } } }), 'model', /exactly one/],
      [tinyJob({ dataset: 'ds_01m8g9p25765rnqh0yh6mpy6az' }), 'dataset', /POST \/v1\/datasets/],
      [tinyJob({ resource_class: 'gpu-9000g' }), 'resource_class', /cpu, gpu-4g, gpu-32g/],
      [tinyJob({ surprise: true }), 'surprise', /unknown field/],
    ];
    for (const [payload, param, message] of cases) {
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', payload: payload as object });
      assert.equal(res.statusCode, 400, `${param}: ${res.body}`);
      const { error } = res.json();
      assert.equal(error.param, param, res.body);
      assert.match(error.message, message, res.body);
    }
  });

  test('list is newest first and cursor-paged without repeats', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await app.inject({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json().id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Awaited<ReturnType<typeof app.inject>> = await app.inject({ method: 'GET', url: `/v1/jobs?limit=2${cursor ? `&after=${cursor}` : ''}` });
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json();
      assert.ok(page.data.length <= 2);
      seen.push(...page.data.map((j: { id: string }) => j.id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(seen.slice(0, 5), [...ids].reverse(), 'the newest five come first, newest first');
    assert.equal(new Set(seen).size, seen.length, 'no job appears twice');
  });

  test('cancelling a queued job cancels it at once and removes it from the queue', async () => {
    const job = (await app.inject({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    const res = await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().status, 'cancelled');
    assert.ok(res.json().finished_at);
    assert.equal(await app.queues.get('cpu')!.getJob(job.id), undefined);
    const again = await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    assert.equal(again.json().status, 'cancelled', 'cancelling twice is harmless');
  });

  test('a running job moves to cancelling and the dispatcher is told over pub/sub', async () => {
    const job = (await app.inject({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    await app.jobs.transition(job.id, 'running', { worker: 'w:1', attempts: 1 });
    const sub = app.redis.duplicate();
    const heard = new Promise<string>((resolve) => sub.on('message', (_c, m) => resolve(m)));
    await sub.subscribe(app.keys.cancelChannel);
    const res = await app.inject({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    sub.on('error', () => {});
    try {
      assert.equal(res.json().status, 'cancelling');
      assert.equal(await heard, job.id);
    } finally {
      sub.disconnect();
    }
  });

  test('the model of a job that has not succeeded cannot be downloaded (409)', async () => {
    const job = (await app.inject({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    const res = await app.inject({ method: 'GET', url: `/v1/jobs/${job.id}/artifacts/model` });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, 'artifact_not_ready');
  });
});
