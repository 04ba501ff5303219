// POST /v1/jobs against what can change under it: a dataset deleted while the submission is in
// flight, and a request that passes every schema yet would make an oversized record.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../services/api/src/app.ts';
import { createRedis } from '@makam/shared/redis';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

let api: InjectApi;
let app: FastifyInstance;
const auth = () => ({ authorization: `Bearer ${api.key}` });

before(async () => {
  api = await startInjectApi({ tenant: 'races', env: { MAKAM_LOG_LEVEL: 'warn' } });
  app = api.app;
});
after(async () => {
  await api?.close();
});

const upload = async (name: string) => (await api.upload({ rows: 30, name })).id;

test('a dataset deleted between the submission\'s checks and its reservation is not trained on: 400, no record, no place, nothing queued', async () => {
  const datasetId = await upload('doomed');
  const datasets = app.datasets;
  const read = datasets.recordOf.bind(datasets);
  let deleted: number | null = null;
  // The delete lands exactly in the window: after the route read the dataset, before the job's MULTI.
  datasets.recordOf = async (id) => {
    const record = await read(id);
    deleted = (await app.inject({ method: 'DELETE', url: `/v1/datasets/${datasetId}`, headers: auth() })).statusCode;
    return record;
  };
  try {
    const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: datasetId } });
    assert.equal(deleted, 200, 'the delete went through in the window');
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.code, 'dataset_not_found');
    assert.equal(res.json().error.param, 'dataset');
  } finally {
    datasets.recordOf = read;
  }
  assert.equal(await app.quotas.activeJobs('races'), 0, 'no place taken');
  assert.equal(await app.queues.get('cpu')!.getJobCountByTypes('wait', 'delayed', 'prioritized'), 0, 'nothing queued');
  const list = (await app.inject({ method: 'GET', url: '/v1/jobs', headers: auth() })).json();
  assert.equal(list.data.length, 0, 'no job record refers to the deleted dataset');
});

test('a dataset this API process remembers but another one deleted: 400 dataset_not_found, even with the quota full, and a remembered record costs no read', async () => {
  const mine = await startInjectApi({ tenant: 'memory', env: { MAKAM_LOG_LEVEL: 'warn', MAKAM_TENANT_MAX_ACTIVE_JOBS: '2' } });
  const other = await buildApp(mine.app.config); // a second API process on the same Redis and store
  const redis = createRedis(mine.redis.url);
  try {
    const submit = (dataset: string) => mine.call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset } });
    const kept = (await mine.upload({ rows: 30, name: 'kept' })).id;
    const gone = (await mine.upload({ rows: 30, name: 'gone' })).id;
    // This process reads `gone` once (a job that is then cancelled, so the dataset can be deleted).
    const first = await submit(gone);
    assert.equal(first.statusCode, 202, first.body);
    assert.equal((await mine.call({ method: 'POST', url: `/v1/jobs/${first.json().id}/cancel` })).statusCode, 200);
    const deleted = await other.inject({ method: 'DELETE', url: `/v1/datasets/${gone}`, headers: { authorization: `Bearer ${mine.key}` } });
    assert.equal(deleted.statusCode, 200, deleted.body);

    // The second submission on a dataset this process has read sends no read of its record.
    assert.equal((await submit(kept)).statusCode, 202);
    const monitor = await redis.monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, argv: string[]) => seen.push(argv));
    assert.equal((await submit(kept)).statusCode, 202, 'the quota (2) is now full');
    await new Promise((r) => setTimeout(r, 200));
    monitor.disconnect();
    const record = `${mine.prefix}:dataset:${kept}`;
    assert.ok(!seen.some((argv) => argv[0]!.toLowerCase() === 'get' && argv[1] === record), `no GET ${record}:\n${seen.map((a) => a.slice(0, 2).join(' ')).join('\n')}`);
    assert.ok(seen.some((argv) => argv[0] === 'EXISTS' && argv[1] === record), 'the reservation checked it still exists');

    // `gone` is in this process's memory; the reservation finds it deleted before it counts the quota.
    const late = await submit(gone);
    assert.equal(late.statusCode, 400, late.body);
    assert.equal(late.json().error.code, 'dataset_not_found');
    assert.equal(late.json().error.param, 'dataset');
    assert.equal(await mine.app.quotas.activeJobs('memory'), 2, 'no place taken');
    const list = (await mine.call({ method: 'GET', url: '/v1/jobs?limit=10' })).json();
    assert.equal(list.data.length, 3, 'no record for the refused submission');
  } finally {
    redis.disconnect();
    await other.close();
    await mine.close();
  }
});

test('a request that passes every schema but would make a record over the limit answers 413 job_too_large naming the body', async () => {
  const datasetId = await upload('big');
  // 64 module names of 6,200 characters: within the 1 MiB body limit, over the 384 KiB record limit.
  const modules = Array.from({ length: 64 }, (_, i) => `m${i}_${'x'.repeat(6200)}`);
  const res = await app.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers: auth(),
    payload: { kind: 'finetune', model: { family: 'decoder', config: { model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 1000 } }, dataset: datasetId, hyperparameters: { lora_target_modules: modules } },
  });
  assert.equal(res.statusCode, 413, res.body.slice(0, 300));
  assert.deepEqual(Object.keys(res.json().error).sort(), ['code', 'message', 'param']);
  assert.equal(res.json().error.code, 'job_too_large');
  assert.equal(res.json().error.param, 'body');
});
