// The API against a real Redis (BullMQ's Lua scripts rule out mocks), called with inject.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { ROOT } from '../support/stack.ts';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

let api: InjectApi;
let app: FastifyInstance;
let datasetId: string;
/** inject with the test tenant's API key. */
const call = (opts: InjectOptions) => api.call(opts);

before(async () => {
  api = await startInjectApi({ env: { MAKAM_MAX_DATASET_BYTES: '100000' } });
  app = api.app;
  datasetId = (await api.upload({ name: 'sample' })).id;
});

after(async () => {
  await api?.close();
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
    const res = await call({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'text/csv' }, payload: csv });
    assert.equal(res.statusCode, 201, res.body);
    const ds = res.json();
    assert.match(ds.id, /^ds_/);
    assert.equal(ds.rows, 240);
    assert.deepEqual(ds.labels, ['arabesk', 'pop', 'rock', 'türkü']);
    assert.deepEqual(ds.label_counts, { arabesk: 90, pop: 60, rock: 50, türkü: 40 });
    const got = await call({ method: 'GET', url: `/v1/datasets/${ds.id}` });
    assert.deepEqual(got.json(), ds);
  });

  test('an unknown content type is refused with 415 naming the accepted ones', async () => {
    const res = await call({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/xml' }, payload: '<x/>' });
    assert.equal(res.statusCode, 415);
    assert.match(res.json().error.message, /application\/jsonl or text\/csv/);
  });

  test('an upload over the size limit is refused with 413', async () => {
    const big = '{"text":"uzun bir satır","label":"a"}\n'.repeat(5000);
    const res = await call({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl' }, payload: big });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'dataset_too_large');
  });

  test('a missing or malformed id answers 404 / 400 in the error shape', async () => {
    const missing = await call({ method: 'GET', url: '/v1/datasets/ds_01m8g9p25765rnqh0yh6mpy6az' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'not_found');
    const bad = await call({ method: 'GET', url: '/v1/datasets/..%2F..%2Fetc' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.param, 'params.id');
  });
});

describe('jobs', () => {
  test('submit answers 202 queued with every default of the family filled in and a BullMQ job under the same id', async () => {
    const res = await call({ method: 'POST', url: '/v1/jobs', payload: tinyJob({ hyperparameters: { epochs: 2 } }) });
    assert.equal(res.statusCode, 202, res.body);
    const job = res.json();
    assert.match(job.id, /^job_/);
    assert.equal(job.status, 'queued');
    assert.equal(job.hyperparameters.epochs, 2);
    assert.equal(job.hyperparameters.batch_size, 16);
    assert.equal(job.hyperparameters.learning_rate, 5e-5);
    assert.equal(job.hyperparameters.lowercase, 'none');
    assert.equal(job.hyperparameters.lora_r, undefined, 'no decoder-only defaults on an encoder job');
    assert.equal(job.resource_class, 'gpu-4g', 'a tiny model goes to the smallest GPU class');
    assert.ok(job.estimate.total_bytes > 0 && job.estimate.total_bytes < 4 * 1024 ** 3);
    const queued = await app.queues.get('gpu-4g')!.getJob(job.id);
    assert.ok(queued, 'the BullMQ job id is the makam job id');
    assert.deepEqual(queued.data, { jobId: job.id });
    const got = await call({ method: 'GET', url: `/v1/jobs/${job.id}` });
    assert.equal(got.json().status, 'queued');
    const events = await call({ method: 'GET', url: `/v1/jobs/${job.id}/events` });
    assert.deepEqual(events.json().data.map((e: { type: string; data: { status: string } }) => [e.type, e.data.status]), [['status', 'queued']]);
  });

  test('jobs go to the smallest class that fits, or are refused with what would fit', async () => {
    const submit = (model: object, hyperparameters: object = {}, extra: object = {}) =>
      call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model, dataset: datasetId, hyperparameters, ...extra } });
    const bert = await submit({ family: 'encoder', name: 'dbmdz/bert-base-turkish-cased' });
    assert.equal(bert.json().resource_class, 'gpu-4g', bert.body);
    const llama = await submit({ family: 'decoder', name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 4 });
    assert.equal(llama.json().resource_class, 'gpu-32g', llama.body);
    const tfidf = await submit({ family: 'tfidf' });
    assert.equal(tfidf.json().resource_class, 'cpu', tfidf.body);
    const scratch = await submit({ family: 'scratch' }, { layers: 2 });
    assert.equal(scratch.statusCode, 202, scratch.body);
    assert.equal(scratch.json().hyperparameters.lowercase, 'turkish');

    const tooBig = await submit({ family: 'decoder', name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 32 });
    assert.equal(tooBig.statusCode, 400);
    assert.equal(tooBig.json().error.code, 'does_not_fit');
    assert.match(tooBig.json().error.message, /gpu-32g, has 32\.0 GiB/);
    assert.match(tooBig.json().error.message, /load_in_4bit|lower batch_size to \d+/);
    const wrongClass = await submit({ family: 'decoder', name: 'meta-llama/Llama-3.1-8B' }, { batch_size: 4 }, { resource_class: 'gpu-4g' });
    assert.equal(wrongClass.statusCode, 400);
    assert.equal(wrongClass.json().error.param, 'resource_class');
    assert.match(wrongClass.json().error.message, /it fits gpu-32g/);
  });

  test('hyperparameters of another family, and inconsistent ones, are refused by name', async () => {
    const cases: Array<[object, object, string, RegExp]> = [
      [{ family: 'encoder', name: 'x' }, { lora_r: 8 }, 'hyperparameters.lora_r', /applies to decoder, not to family 'encoder'/],
      [{ family: 'tfidf' }, { epochs: 3 }, 'hyperparameters.epochs', /applies to encoder, decoder, scratch/],
      [{ family: 'scratch' }, { d_model: 100, heads: 8 }, 'hyperparameters.heads', /must divide d_model/],
      [{ family: 'scratch', name: 'x' }, {}, 'model.name', /architecture and tokenizer are hyperparameters/],
      [{ family: 'encoder', name: 'x' }, { focal_alpha: { pop: 1 } }, 'hyperparameters.focal_alpha', /set loss to 'focal'/],
      [{ family: 'encoder', name: 'x' }, { loss: 'focal', focal_alpha: { jazz: 1 } }, 'hyperparameters.focal_alpha', /jazz/],
      [{ family: 'encoder', name: 'x' }, { class_weights: 'sometimes' }, 'hyperparameters.class_weights', /./],
      [{ family: 'tfidf' }, { char_ngram_min: 6, char_ngram_max: 3 }, 'hyperparameters.char_ngram_min', /must not exceed/],
    ];
    for (const [model, hyperparameters, param, message] of cases) {
      const res = await call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model, dataset: datasetId, hyperparameters } });
      assert.equal(res.statusCode, 400, `${param}: ${res.body}`);
      assert.equal(res.json().error.param, param, res.body);
      assert.match(res.json().error.message, message, res.body);
    }
  });

  test('bad requests get a 400 naming the field and what is accepted', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [tinyJob({ hyperparameters: { epochs: 0 } }), 'hyperparameters.epochs', />= 1/],
      [tinyJob({ hyperparameters: { epoch: 3 } }), 'hyperparameters.epoch', /accepted fields: .*epochs, batch_size/],
      [tinyJob({ hyperparameters: { max_length: 4096 } }), 'hyperparameters.max_length', /<= 512/],
      [{ ...tinyJob(), kind: 'pretrain' }, 'kind', /finetune/],
      [{ kind: 'finetune', model: { family: 'encoder', name: 'x' } }, 'dataset', /required/],
      [tinyJob({ model: { family: 'encoder' } }), 'model', /exactly one of 'model.name'/],
      [tinyJob({ model: { family: 'encoder', name: 'a', config: { model_type: 'bert' } } }), 'model', /exactly one/],
      [tinyJob({ dataset: 'ds_01m8g9p25765rnqh0yh6mpy6az' }), 'dataset', /POST \/v1\/datasets/],
      [tinyJob({ resource_class: 'gpu-9000g' }), 'resource_class', /cpu, gpu-4g, gpu-32g/],
      [tinyJob({ hyperparameters: { truncation: 'middle' } }), 'hyperparameters.truncation', /./],
      [tinyJob({ surprise: true }), 'surprise', /unknown field/],
    ];
    for (const [payload, param, message] of cases) {
      const res = await call({ method: 'POST', url: '/v1/jobs', payload: payload as object });
      assert.equal(res.statusCode, 400, `${param}: ${res.body}`);
      const { error } = res.json();
      assert.equal(error.param, param, res.body);
      assert.match(error.message, message, res.body);
    }
  });

  test('list is newest first and cursor-paged without repeats', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await call({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json().id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Awaited<ReturnType<typeof app.inject>> = await call({ method: 'GET', url: `/v1/jobs?limit=2${cursor ? `&after=${cursor}` : ''}` });
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
    const job = (await call({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    const res = await call({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().status, 'cancelled');
    assert.ok(res.json().finished_at);
    assert.equal(await app.queues.get(job.resource_class)!.getJob(job.id), undefined);
    const again = await call({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    assert.equal(again.json().status, 'cancelled', 'cancelling twice is harmless');
  });

  test('a running job moves to cancelling and the dispatcher is told over pub/sub', async () => {
    const job = (await call({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    await app.jobs.transition(job.id, 'running', { worker: 'w:1', attempts: 1 });
    const sub = app.redis.duplicate();
    const heard = new Promise<string>((resolve) => sub.on('message', (_c, m) => resolve(m)));
    await sub.subscribe(app.keys.cancelChannel);
    const res = await call({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
    sub.on('error', () => {});
    try {
      assert.equal(res.json().status, 'cancelling');
      assert.equal(await heard, job.id);
    } finally {
      sub.disconnect();
    }
  });

  test('the model of a job that has not succeeded cannot be downloaded (409)', async () => {
    const job = (await call({ method: 'POST', url: '/v1/jobs', payload: tinyJob() })).json();
    const res = await call({ method: 'GET', url: `/v1/jobs/${job.id}/artifacts/model` });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, 'artifact_not_ready');
  });
});
