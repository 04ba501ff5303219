// A successful read is counted into a 'requests summary' line (MAKAM_READ_LOG_SUMMARY_MS) rather than
// logged alone, the first of its route, key and status in a window excepted; writes, refusals and
// errors keep a line each (the audit trail), and 0 gives every read its line again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from '../support/keys.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { ROOT } from '../support/stack.ts';

let server: TestRedis;
const apps: FastifyInstance[] = [];

before(async () => {
  server = await startRedis();
});
after(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await server?.stop();
});

/** An app logging into the returned array, with a key and a dataset of its own. */
async function appWith(summaryMs: number) {
  const prefix = uniquePrefix();
  let text = '';
  const sink = new Writable({ write: (chunk, _e, cb) => ((text += chunk.toString()), cb()) });
  const config = loadApiConfig({ REDIS_URL: server.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-read-log-')), MAKAM_READ_LOG_SUMMARY_MS: String(summaryMs) });
  const app = await buildApp(config, pino({ level: 'info' }, sink));
  apps.push(app);
  const headers = { authorization: `Bearer ${await createKey(server.url, prefix, 'reader')}` };
  const sample = (await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8')).split('\n').slice(0, 30).join('\n');
  const upload = await app.inject({ method: 'POST', url: '/v1/datasets?name=r', headers: { ...headers, 'content-type': 'application/jsonl' }, payload: sample });
  assert.equal(upload.statusCode, 201, upload.body);
  const lines = () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const mark = lines().length;
  return { app, headers, dataset: upload.json().id as string, since: () => lines().slice(mark) };
}

test('successful reads are summarised; the first of a window, refusals and writes keep a line each', async () => {
  const { app, headers, dataset, since } = await appWith(3_600_000);
  for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: 'GET', url: `/v1/datasets/${dataset}`, headers })).statusCode, 200);
  const missing = (await app.inject({ method: 'GET', url: '/v1/datasets/ds_missing', headers })).statusCode;
  assert.ok(missing >= 400 && missing < 500, String(missing));
  assert.equal((await app.inject({ method: 'GET', url: `/v1/datasets/${dataset}` })).statusCode, 401);
  const completed = since().filter((l) => l.msg === 'request completed');
  assert.deepEqual(completed.map((l) => [l.url, l.statusCode]), [[`/v1/datasets/${dataset}`, 200], ['/v1/datasets/ds_missing', missing], [`/v1/datasets/${dataset}`, 401]]);
  await app.close();
  const summary = since().filter((l) => l.msg === 'requests summary');
  assert.equal(summary.length, 1, JSON.stringify(summary));
  assert.deepEqual([summary[0]!.route, summary[0]!.statusCode, summary[0]!.count, summary[0]!.tenant], ['/v1/datasets/:id', 200, 2, 'reader']);
});

test('MAKAM_READ_LOG_SUMMARY_MS=0 logs every read', async () => {
  const { app, headers, dataset, since } = await appWith(0);
  for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: 'GET', url: `/v1/datasets/${dataset}`, headers })).statusCode, 200);
  await app.close();
  assert.equal(since().filter((l) => l.msg === 'request completed').length, 3);
  assert.equal(since().filter((l) => l.msg === 'requests summary').length, 0);
});

test('every line of an authenticated request, its completion line too, names the tenant and the key', async () => {
  const { app, headers, dataset, since } = await appWith(0);
  const res = await app.inject({ method: 'GET', url: `/v1/datasets/${dataset}`, headers });
  assert.equal(res.statusCode, 200, res.body);
  const completed = since().filter((l) => l.msg === 'request completed');
  assert.equal(completed.length, 1, JSON.stringify(since()));
  assert.equal(typeof completed[0]!.tenant, 'string', JSON.stringify(completed[0]));
  assert.equal(typeof completed[0]!.keyId, 'string', JSON.stringify(completed[0]));
});
