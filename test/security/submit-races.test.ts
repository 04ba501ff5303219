// POST /v1/jobs against what can change under it: a dataset deleted while the submission is in
// flight, and a request that passes every schema yet would make an oversized record.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
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

test('a dataset deleted between the submission\'s checks and its reservation is not trained on: 400, no record, the place given back', async () => {
  const datasetId = await upload('doomed');
  const quotas = app.quotas;
  const reserve = quotas.reserveActiveJob.bind(quotas);
  let deleted: number | null = null;
  // The delete lands exactly in the window: after the route read the dataset, before it reserved.
  quotas.reserveActiveJob = async (...args) => {
    deleted = (await app.inject({ method: 'DELETE', url: `/v1/datasets/${datasetId}`, headers: auth() })).statusCode;
    return reserve(...args);
  };
  try {
    const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: datasetId } });
    assert.equal(deleted, 200, 'the delete went through in the window');
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.code, 'dataset_not_found');
    assert.equal(res.json().error.param, 'dataset');
  } finally {
    quotas.reserveActiveJob = reserve;
  }
  assert.equal(await quotas.activeJobs('races'), 0, 'the reserved place was given back');
  const list = (await app.inject({ method: 'GET', url: '/v1/jobs', headers: auth() })).json();
  assert.equal(list.data.length, 0, 'no job record refers to the deleted dataset');
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
