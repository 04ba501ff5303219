// Ensemble submissions against the real API and Redis: finished jobs of one tenant on the same
// datasets and data hyperparameters are queued as an ensemble on the largest of their classes; every
// other combination is refused with a 4xx naming the member (members.<i>) and the field, and a
// refusal stores nothing. Members are finished here as the dispatcher finishes them: through the
// job store's status machine, with a result and an artifact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { queueName } from '@makam/shared/queues';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { ROOT } from '../support/stack.ts';
import { createKey } from '../support/keys.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let redis: TestRedis;
let app: FastifyInstance;
let prefix: string;
const keys: Record<string, string> = {};
const datasets: Record<string, string> = {};
const call = (tenant: string, opts: InjectOptions) => app.inject({ ...opts, headers: { authorization: `Bearer ${keys[tenant]}`, ...opts.headers } });

before(async () => {
  redis = await startRedis();
  prefix = uniquePrefix();
  app = await buildApp(loadApiConfig({ REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-api-')), MAKAM_TENANT_MAX_ACTIVE_JOBS: '100' }));
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'));
  for (const tenant of ['acme', 'other']) {
    keys[tenant] = await createKey(redis.url, prefix, tenant);
    datasets[tenant] = (await call(tenant, { method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl' }, payload: sample })).json().id;
  }
  // Another dataset of acme's: the same rows but one, so another sha256.
  const fewer = sample.toString().split('\n').slice(1).join('\n');
  datasets.acme2 = (await call('acme', { method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl' }, payload: fewer })).json().id;
});
after(async () => {
  await app?.close();
  await redis?.stop();
});

const LABELS = ['arabesk', 'pop', 'rock', 'türkü'];

/** A finetune job of `tenant`, submitted through the API and, unless `finish` is false, finished as a dispatcher finishes one. */
async function job(tenant: string, body: Record<string, unknown>, finish: { refit?: boolean | 'kept'; labels?: string[] } | false = {}): Promise<string> {
  const res = await call(tenant, { method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', dataset: datasets[tenant], ...body } });
  assert.equal(res.statusCode, 202, res.body);
  const id = res.json().id as string;
  if (finish === false) return id;
  assert.ok((await app.jobs.transition(id, 'running', { started_at: new Date().toISOString() })).ok);
  // 'kept': refit as the worker does now, its first model's validation probabilities in the artifact.
  const kept = finish.refit === 'kept' ? { validation_probabilities: 'validation_probabilities.npy', validation_texts_sha256: 'b'.repeat(64) } : {};
  const result = { accuracy: 0.5, refit: finish.refit ? { trained_on: 'train+validation', rows: 200, epochs: 1, ...kept } : null, test: { confusion_matrix: { labels: finish.labels ?? LABELS } } };
  assert.ok((await app.jobs.transition(id, 'succeeded', { result, artifact: { sha256: 'a'.repeat(64), size_bytes: 100 }, finished_at: new Date().toISOString() })).ok);
  return id;
}

const tfidf = { model: { family: 'tfidf' }, hyperparameters: { refit: false, test_fraction: 0.2 } };
const scratch = { model: { family: 'scratch' }, hyperparameters: { epochs: 1, layers: 1, d_model: 32, ff_dim: 64, heads: 2, test_fraction: 0.2 } };
const ensemble = (members: string[], extra: Record<string, unknown> = {}) => ({ method: 'POST', url: '/v1/jobs', payload: { kind: 'ensemble', members, ...extra } }) as const;

async function storedJobs(): Promise<number> {
  return (await app.inject({ method: 'GET', url: '/v1/jobs?limit=100', headers: { authorization: `Bearer ${keys.acme}` } })).json().data.length;
}

test('finished jobs on the same data are queued as an ensemble on the largest class among theirs, with their models and data hyperparameters', async () => {
  const a = await job('acme', tfidf);
  const b = await job('acme', { ...scratch, resource_class: 'gpu-4g' });
  const res = await call('acme', ensemble([a, b], { method: 'stack' }));
  assert.equal(res.statusCode, 202, res.body);
  const e = res.json();
  assert.equal(e.kind, 'ensemble');
  assert.equal(e.method, 'stack');
  assert.deepEqual(e.model, { family: 'ensemble' });
  assert.equal(e.dataset, datasets.acme);
  assert.equal(e.resource_class, 'gpu-4g');
  assert.deepEqual(e.members.map((m: { job_id: string; family: string }) => [m.job_id, m.family]), [[a, 'tfidf'], [b, 'scratch']]);
  assert.deepEqual(e.members[0].artifact, { sha256: 'a'.repeat(64), size_bytes: 100 });
  assert.equal(e.members[1].hyperparameters.d_model, 32);
  // The data hyperparameters only: those that carve the splits and prepare the texts.
  assert.deepEqual(Object.keys(e.hyperparameters).sort(), ['drop_chord_lines', 'lowercase', 'remove_eval_duplicates', 'seed', 'test_fraction', 'unescape_newlines', 'unicode_nfc', 'validation_fraction']);
  const queue = new Queue(queueName('gpu-4g'), { connection: { url: redis.url }, prefix: `${prefix}-q` });
  try {
    assert.ok(await queue.getJob(e.id), 'queued on its class');
  } finally {
    await queue.close();
  }
  const listed = await call('acme', { method: 'GET', url: '/v1/jobs?kind=ensemble' });
  assert.deepEqual(listed.json().data.map((j: { id: string }) => j.id), [e.id]);
  const average = await call('acme', ensemble([b, a]));
  assert.equal(average.json().method, 'average', 'average by default');
  // A refit member that keeps its first model's validation probabilities is taken.
  const refit = await job('acme', { ...tfidf, hyperparameters: { refit: true, test_fraction: 0.2 } }, { refit: 'kept' });
  const withRefit = await call('acme', ensemble([refit, b]));
  assert.equal(withRefit.statusCode, 202, withRefit.body);
});

test('each refusal names the member and the field, and stores nothing', async () => {
  const a = await job('acme', tfidf);
  const lowercased = await job('acme', { ...scratch, hyperparameters: { ...scratch.hyperparameters, lowercase: 'none' } });
  const seeded = await job('acme', { ...tfidf, hyperparameters: { ...tfidf.hyperparameters, seed: 7 } });
  const otherData = await job('acme', { ...tfidf, dataset: datasets.acme2 });
  const refit = await job('acme', { ...tfidf, hyperparameters: { refit: true, test_fraction: 0.2 } }, { refit: true });
  const queued = await job('acme', tfidf, false);
  const labels = await job('acme', tfidf, { labels: ['pop', 'rock'] });
  const theirs = await job('other', tfidf);
  const tune = (await call('acme', { method: 'POST', url: '/v1/jobs', payload: { kind: 'tune', dataset: datasets.acme, ...scratch, search: { space: { dropout: { type: 'float', low: 0, high: 0.3 } }, trials: 2 } } })).json().id as string;
  const before_ = await storedJobs();

  const cases: Array<[string, Record<string, unknown>, number, string, string, RegExp]> = [
    ['unknown id', ensemble([a, 'job_' + '0'.repeat(26)]).payload, 400, 'job_not_found', 'members.1', /no job with id job_0000/],
    ["another tenant's job", ensemble([a, theirs]).payload, 400, 'job_not_found', 'members.1', /no job with id/],
    ['duplicate', ensemble([a, a]).payload, 400, 'invalid_request', 'members.1', /repeats .* \(members\.0\)/],
    ['not finished', ensemble([a, queued]).payload, 409, 'member_not_finished', 'members.1', /is queued/],
    ['a tune job', ensemble([tune, a]).payload, 400, 'invalid_member', 'members.0', /tune job.*best trial/],
    ['refit, without its first model\'s validation probabilities', ensemble([a, refit]).payload, 400, 'invalid_member', 'members.1', /refit.*keeps no validation probabilities.*"refit": false/],
    ['another dataset', ensemble([a, otherData]).payload, 400, 'member_mismatch', 'members.1', /has dataset/],
    ['another text preparation', ensemble([a, lowercased]).payload, 400, 'member_mismatch', 'members.1', /hyperparameters\.lowercase "none".*"turkish"/],
    ['another seed', ensemble([a, seeded]).payload, 400, 'member_mismatch', 'members.1', /hyperparameters\.seed 7.*42/],
    ['other labels', ensemble([a, labels]).payload, 400, 'member_mismatch', 'members.1', /labels/],
    ['one member', ensemble([a]).payload, 400, 'invalid_request', 'members', /members/],
    ['nine members', ensemble(Array(9).fill(a)).payload, 400, 'invalid_request', 'members', /members/],
    ['an unknown method', ensemble([a, lowercased], { method: 'vote' }).payload, 400, 'invalid_request', 'method', /average, stack/],
    ['a model for an ensemble', ensemble([a, lowercased], { model: { family: 'tfidf' } }).payload, 400, 'invalid_request', 'model', /unknown field 'model'/],
    ['an unknown kind', { kind: 'blend', members: [a, lowercased] }, 400, 'invalid_request', 'kind', /finetune, tune, ensemble/],
    ['no kind', { members: [a, lowercased] }, 400, 'invalid_request', 'kind', /'kind' is required/],
    ['an unknown class', ensemble([a, (await job('acme', tfidf))], { resource_class: 'tpu' }).payload, 400, 'does_not_fit', 'resource_class', /not one of cpu, gpu-4g, gpu-32g/],
  ];
  for (const [what, payload, status, code, param, message] of cases) {
    const res = await call('acme', { method: 'POST', url: '/v1/jobs', payload });
    assert.equal(res.statusCode, status, `${what}: ${res.body}`);
    const { error } = res.json();
    assert.equal(error.code, code, `${what}: ${res.body}`);
    assert.equal(error.param, param, `${what}: ${res.body}`);
    assert.match(error.message, message, what);
  }
  assert.equal(await storedJobs(), before_ + 1, 'no refusal stored a job (the one more is the last case\'s member)');
});
