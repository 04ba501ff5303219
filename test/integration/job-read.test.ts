// GET /v1/jobs/:id in one Redis round trip: the front door's script (lua/admit-3.lua) reads the
// job's record once the request is admitted (the route's config.admitRead), and the route reads
// nothing more. A request that is refused reads no record; tenancy is the route's as before.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { createRedis, type Redis } from '@makam/shared/redis';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from '../support/keys.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { ROOT } from '../support/stack.ts';

let server: TestRedis;
let redis: Redis;
let app: FastifyInstance;
let prefix: string;
let key: string;
let otherKey: string;
let jobId: string;
let submitted: string;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
  prefix = uniquePrefix();
  app = await buildApp(loadApiConfig({ REDIS_URL: server.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-job-read-')), MAKAM_LOG_LEVEL: 'fatal' }));
  key = await createKey(server.url, prefix, 'reader');
  otherKey = await createKey(server.url, prefix, 'other');
  const auth = { authorization: `Bearer ${key}` };
  const sample = (await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8')).split('\n').slice(0, 30).join('\n');
  const dataset = (await app.inject({ method: 'POST', url: '/v1/datasets?name=r', headers: { ...auth, 'content-type': 'application/jsonl' }, payload: sample })).json().id;
  const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset } });
  assert.equal(res.statusCode, 202, res.body);
  jobId = res.json().id;
  submitted = res.body;
});
after(async () => {
  await app?.close();
  redis?.disconnect();
  await server?.stop();
});

/** The request's answer and the commands the app sent for it (a script's own calls left out). */
async function sent(opts: InjectOptions): Promise<{ status: number; body: any; commands: string[]; reads: number }> {
  const monitor = await redis.monitor();
  const seen: string[][] = [];
  monitor.on('monitor', (_time: string, argv: string[]) => seen.push(argv));
  const res = await app.inject(opts);
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  const record = `${prefix}:job:${jobId}`;
  return {
    status: res.statusCode,
    body: res.json(),
    commands: seen.filter((argv) => argv[0] === argv[0]!.toLowerCase()).map((argv) => argv[0]!),
    // HGETALL of the record, from the app or inside its script.
    reads: seen.filter((argv) => argv[0]!.toLowerCase() === 'hgetall' && argv[1] === record).length,
  };
}

test('a GET of a job is one round trip: the front door reads the record once the key is admitted', async () => {
  const got = await sent({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${key}` } });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.id, jobId);
  assert.equal(got.body.status, 'queued');
  assert.equal(got.body.tenant, 'reader');
  assert.match(got.commands.join(' '), /^eval(sha)?$/, `one command, the front door's script: ${got.commands.join(' ')}`);
  assert.equal(got.reads, 1);
});

test('a GET answers the stored record field for field: a new one in the bytes of its submission\'s answer', async () => {
  const auth = { authorization: `Bearer ${key}` };
  const record = `${prefix}:job:${jobId}`;
  // The record as stored: status and tenant as they are, every other field JSON, worker_seq the dispatcher's own.
  const stored = async () => Object.fromEntries(Object.entries(await redis.hgetall(record)).filter(([k]) => k !== 'worker_seq').map(([k, v]) => [k, k === 'status' || k === 'tenant' ? v : JSON.parse(v)]));
  const fresh = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: auth });
  assert.equal(fresh.statusCode, 200, fresh.body);
  assert.equal(fresh.body, submitted);
  assert.deepEqual(JSON.parse(fresh.body), await stored());
  // Fields a run writes, with nesting, escapes and non-ASCII text; put back after.
  const run = { progress: { epoch: 1, step: 7, total_steps: 20, phase: 'mlm' }, metrics: { epoch: 1, step: 7, train_loss: 0.25, accuracy: 1 }, result: { macro_f1: 0.5, note: 'türkü "q" \\ \n', per_class: { pop: [1, 2.5e-7, null] } }, artifact: { sha256: 'ab'.repeat(32), size_bytes: 1234 }, worker: 'w-1' };
  const before = await redis.hgetall(record);
  await redis.hset(record, Object.fromEntries(Object.entries(run).map(([k, v]) => [k, JSON.stringify(v)])));
  try {
    const got = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: auth });
    assert.equal(got.statusCode, 200, got.body);
    assert.deepEqual(JSON.parse(got.body), await stored());
  } finally {
    await redis.hset(record, before);
  }
});

test("another tenant's GET is the 404 of a missing job; a refused key or a missing one reads no record", async () => {
  const other = await sent({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: { authorization: `Bearer ${otherKey}` } });
  assert.equal(other.status, 404);
  assert.equal(other.body.error.code, 'not_found');
  const missing = await sent({ method: 'GET', url: `/v1/jobs/job_${'0'.repeat(26)}`, headers: { authorization: `Bearer ${key}` } });
  assert.equal(missing.status, 404);
  const wrongKey = await sent({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: { authorization: `Bearer mk_${'x'.repeat(43)}` } }); // well formed, no such key
  assert.equal(wrongKey.status, 401);
  assert.equal(wrongKey.reads, 0, 'no record read for a key that is not valid');
  const noKey = await sent({ method: 'GET', url: `/v1/jobs/${jobId}` });
  assert.equal(noKey.status, 401);
  assert.equal(noKey.reads, 0);
  const badId = await sent({ method: 'GET', url: '/v1/jobs/job_1:events', headers: { authorization: `Bearer ${key}` } });
  assert.equal(badId.status, 400, JSON.stringify(badId.body));
  assert.equal(badId.body.error.param, 'params.id');
});
