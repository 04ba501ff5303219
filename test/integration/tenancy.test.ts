// Tenants, API keys, limits and idempotency against a real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { ROOT } from '../support/stack.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const ADMIN = 'admin-secret-for-tests-0123456789';
let redis: TestRedis;
let app: FastifyInstance;
let logs = '';
let sample: Buffer;

async function build(extra: Record<string, string> = {}): Promise<FastifyInstance> {
  const prefix = uniquePrefix();
  const config = loadApiConfig({
    REDIS_URL: redis.url,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-tenancy-')),
    MAKAM_ADMIN_KEY: ADMIN,
    ...extra,
  });
  const sink = new Writable({ write: (chunk, _e, cb) => ((logs += chunk.toString()), cb()) });
  return buildApp(config, pino({ level: 'info' }, sink));
}

const as = (key: string, opts: InjectOptions) => app.inject({ ...opts, headers: { authorization: `Bearer ${key}`, ...opts.headers } });
async function newKey(tenant: string, on = app): Promise<string> {
  const res = await on.inject({ method: 'POST', url: '/v1/admin/keys', headers: { authorization: `Bearer ${ADMIN}` }, payload: { tenant, name: 'test' } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().key;
}
const upload = (key: string, headers: Record<string, string> = {}, on = app) =>
  on.inject({ method: 'POST', url: '/v1/datasets', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/jsonl', ...headers }, payload: sample });

before(async () => {
  redis = await startRedis();
  sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'));
  app = await build();
});
after(async () => {
  await app?.close();
  await redis?.stop();
});

describe('API keys', () => {
  test('a request without a key, with a wrong one or with a revoked one gets 401', async () => {
    const none = await app.inject({ method: 'GET', url: '/v1/jobs' });
    assert.equal(none.statusCode, 401);
    assert.deepEqual(Object.keys(none.json().error), ['code', 'message', 'param']);
    assert.equal((await as('mk_not-a-real-key', { method: 'GET', url: '/v1/jobs' })).statusCode, 401);
    const key = await newKey('acme');
    assert.equal((await as(key, { method: 'GET', url: '/v1/jobs' })).statusCode, 200);
    const listed = await as(ADMIN, { method: 'GET', url: '/v1/admin/keys?tenant=acme' });
    const id = listed.json().data.at(-1).id;
    assert.ok(!JSON.stringify(listed.json()).includes(key), 'keys are never shown again');
    assert.equal((await as(ADMIN, { method: 'DELETE', url: `/v1/admin/keys/${id}` })).statusCode, 200);
    const revoked = await as(key, { method: 'GET', url: '/v1/jobs' });
    assert.equal(revoked.statusCode, 401);
    assert.match(revoked.json().error.message, /revoked/);
  });

  test('admin routes take only the admin key', async () => {
    const key = await newKey('acme');
    assert.equal((await as(key, { method: 'GET', url: '/v1/admin/keys' })).statusCode, 401);
    assert.equal((await as(ADMIN, { method: 'GET', url: '/v1/jobs' })).statusCode, 401, 'the admin key is no tenant key');
  });

  test('keys are stored hashed and never logged', async () => {
    const key = await newKey('logcheck');
    await as(key, { method: 'GET', url: '/v1/jobs' });
    const dump = JSON.stringify(await app.redis.keys('*'));
    for (const k of await app.redis.keys(`${app.config.MAKAM_REDIS_PREFIX}:apikey:*`)) assert.ok(!(await app.redis.get(k))!.includes(key));
    assert.ok(!dump.includes(key));
    assert.ok(!logs.includes(key), 'no API key in a log line');
    assert.ok(!logs.includes(ADMIN), 'no admin key in a log line');
  });
});

describe('tenants', () => {
  test("another tenant's dataset, job, metrics, events, model and cancel answer 404 exactly as missing ones do", async () => {
    const [a, b] = [await newKey('tenant-a'), await newKey('tenant-b')];
    const ds = (await upload(a)).json();
    const job = (await as(a, { method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.id } })).json();
    const missingJob = 'job_01m8g9p5j5q2s88fphw7b2hfpz';
    const missingDs = 'ds_01m8g9p5j5q2s88fphw7b2hfpz';
    const pairs: Array<[InjectOptions, InjectOptions]> = [
      [{ method: 'GET', url: `/v1/datasets/${ds.id}` }, { method: 'GET', url: `/v1/datasets/${missingDs}` }],
      [{ method: 'GET', url: `/v1/jobs/${job.id}` }, { method: 'GET', url: `/v1/jobs/${missingJob}` }],
      [{ method: 'GET', url: `/v1/jobs/${job.id}/metrics` }, { method: 'GET', url: `/v1/jobs/${missingJob}/metrics` }],
      [{ method: 'GET', url: `/v1/jobs/${job.id}/events` }, { method: 'GET', url: `/v1/jobs/${missingJob}/events` }],
      [{ method: 'GET', url: `/v1/jobs/${job.id}/artifacts/model` }, { method: 'GET', url: `/v1/jobs/${missingJob}/artifacts/model` }],
      [{ method: 'POST', url: `/v1/jobs/${job.id}/cancel` }, { method: 'POST', url: `/v1/jobs/${missingJob}/cancel` }],
    ];
    for (const [theirs, missing] of pairs) {
      const x = await as(b, theirs);
      const y = await as(b, missing);
      assert.equal(x.statusCode, 404, theirs.url as string);
      assert.equal(x.json().error.code, y.json().error.code);
      assert.equal(x.json().error.message.replace(/\w+_[0-9a-z]{26}/, 'ID'), y.json().error.message.replace(/\w+_[0-9a-z]{26}/, 'ID'));
    }
    const usingTheirs = await as(b, { method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.id } });
    assert.equal(usingTheirs.statusCode, 400);
    assert.equal(usingTheirs.json().error.code, 'dataset_not_found');
    assert.deepEqual((await as(b, { method: 'GET', url: '/v1/jobs' })).json().data, [], "b's list holds none of a's jobs");
    assert.equal((await as(a, { method: 'GET', url: `/v1/jobs/${job.id}` })).json().status, 'queued', 'the cancel by b changed nothing');
  });
});

describe('limits', () => {
  test('a tenant with too many active jobs gets 429 naming the limit; a finished job frees a place', async () => {
    const small = await build({ MAKAM_TENANT_MAX_ACTIVE_JOBS: '2' });
    try {
      const key = await newKey('busy', small);
      const ds = (await upload(key, {}, small)).json();
      const submit = () => small.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` }, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.id } });
      const first = (await submit()).json();
      assert.equal((await submit()).statusCode, 202);
      const third = await submit();
      assert.equal(third.statusCode, 429);
      assert.equal(third.json().error.code, 'too_many_active_jobs');
      assert.match(third.json().error.message, /limit is 2/);
      assert.equal(await small.queues.get('cpu')!.getJobCountByTypes('wait', 'delayed', 'prioritized'), 2, 'the refused job is not queued');
      await small.inject({ method: 'POST', url: `/v1/jobs/${first.id}/cancel`, headers: { authorization: `Bearer ${key}` } });
      assert.equal((await submit()).statusCode, 202);
    } finally {
      await small.close();
    }
  });

  test('simultaneous submissions cannot pass the active-job limit together', async () => {
    const small = await build({ MAKAM_TENANT_MAX_ACTIVE_JOBS: '3' });
    try {
      const key = await newKey('burst', small);
      const ds = (await upload(key, {}, small)).json();
      const submit = () => small.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` }, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.id } });
      const codes = (await Promise.all(Array.from({ length: 12 }, submit))).map((r) => r.statusCode).sort();
      assert.deepEqual(codes, [202, 202, 202, ...Array(9).fill(429)]);
      assert.equal((await small.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` } })).json().data.length, 3);
    } finally {
      await small.close();
    }
  });

  test('stored bytes past the tenant quota get 403 and nothing is stored', async () => {
    const small = await build({ MAKAM_TENANT_MAX_STORED_BYTES: String(sample.length + 1000) });
    try {
      const key = await newKey('hoarder', small);
      assert.equal((await upload(key, {}, small)).statusCode, 201);
      const again = await upload(key, {}, small);
      assert.equal(again.statusCode, 403);
      assert.equal(again.json().error.code, 'storage_quota_exceeded');
      assert.match(again.json().error.message, /of its \d+ dataset bytes/);
      assert.equal(await small.redis.zcard(small.keys.datasets), 1, 'the refused dataset has no record');
    } finally {
      await small.close();
    }
  });

  test('more requests a minute than the key may make get 429', async () => {
    const small = await build({ MAKAM_RATE_LIMIT_PER_MINUTE: '5' });
    try {
      const key = await newKey('chatty', small);
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) codes.push((await small.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` } })).statusCode);
      assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
      const other = await newKey('quiet', small);
      assert.equal((await small.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${other}` } })).statusCode, 200, 'limits are per tenant: another tenant is not held back');
      const res = await small.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` } });
      assert.equal(res.json().error.code, 'rate_limited');
      assert.match(res.json().error.message, /more than 5 requests a minute/);
    } finally {
      await small.close();
    }
  });
});

describe('Idempotency-Key', () => {
  test('a repeated job submission returns the first answer; another body with the key gets 409', async () => {
    const key = await newKey('idem');
    const ds = (await upload(key)).json();
    const body = { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.id };
    const first = await as(key, { method: 'POST', url: '/v1/jobs', headers: { 'idempotency-key': 'submit-1' }, payload: body });
    const second = await as(key, { method: 'POST', url: '/v1/jobs', headers: { 'idempotency-key': 'submit-1' }, payload: body });
    assert.equal(first.statusCode, 202);
    assert.equal(second.statusCode, 202);
    assert.equal(second.json().id, first.json().id);
    assert.equal((await as(key, { method: 'GET', url: '/v1/jobs' })).json().data.length, 1, 'one job, not two');
    const other = await as(key, { method: 'POST', url: '/v1/jobs', headers: { 'idempotency-key': 'submit-1' }, payload: { ...body, hyperparameters: { C: 2 } } });
    assert.equal(other.statusCode, 409);
    assert.equal(other.json().error.code, 'idempotency_key_reused');
  });

  test('a repeated dataset upload returns the first dataset; a refused one frees the key', async () => {
    const key = await newKey('idem-ds');
    const a = await upload(key, { 'idempotency-key': 'up-1' });
    const b = await upload(key, { 'idempotency-key': 'up-1' });
    assert.equal(b.json().id, a.json().id);
    const bad = await as(key, { method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl', 'idempotency-key': 'up-2' }, payload: '{"text":"x","label":"a"}\n' });
    assert.equal(bad.statusCode, 400);
    const fixed = await upload(key, { 'idempotency-key': 'up-2' });
    assert.equal(fixed.statusCode, 201, 'the key is free again after a refusal');
    const conflict = await as(key, { method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl', 'idempotency-key': 'up-1' }, payload: '{"text":"x","label":"a"}\n{"text":"y","label":"b"}\n' });
    assert.equal(conflict.statusCode, 409);
  });
});
