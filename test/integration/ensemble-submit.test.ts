// An ensemble is submitted by the same steps as every other kind (jobs/queue-new-job.ts): its record
// and its BullMQ job in one MULTI, an oversized record refused with 413 before a quota place is
// taken, and one log line for the request, the completion line naming the job.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { queuedJob } from '@makam/shared/job-store';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

const LIMIT = 3;
let api: InjectApi;
let redis: Redis;
let app: FastifyInstance;
let prefix: string;
let dataset: string;
let logs = '';
const auth = () => ({ authorization: `Bearer ${api.key}` });
const submit = (members: string[]) => app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { kind: 'ensemble', members } });

before(async () => {
  const sink = new Writable({ write: (chunk, _e, cb) => ((logs += chunk.toString()), cb()) });
  api = await startInjectApi({ tenant: 'ens', env: { MAKAM_TENANT_MAX_ACTIVE_JOBS: String(LIMIT) }, logger: pino({ level: 'info' }, sink) });
  ({ app, prefix } = api);
  redis = createRedis(api.redis.url);
  dataset = (await api.upload({ rows: 30, name: 'ens' })).id;
});
after(async () => {
  redis?.disconnect();
  await api?.close();
});

/** A finished tfidf member, stored and finished as a dispatcher finishes one; `pad` makes its record larger. */
async function member(pad = 0): Promise<string> {
  const id = newJobId();
  const hyperparameters = { refit: false, ...(pad ? { pad: 'x'.repeat(pad) } : {}) };
  await app.jobs.create(queuedJob({ id, tenant: 'ens', kind: 'finetune', model: { family: 'tfidf' }, dataset, validation_dataset: null, test_dataset: null, hyperparameters, resource_class: 'cpu', estimate: null }));
  assert.ok((await app.jobs.transition(id, 'running')).ok);
  const result = { accuracy: 0.5, test: { confusion_matrix: { labels: ['a', 'b'] } } };
  assert.ok((await app.jobs.transition(id, 'succeeded', { result, artifact: { sha256: 'a'.repeat(64), size_bytes: 100 }, finished_at: new Date().toISOString() })).ok);
  return id;
}

test('an ensemble\'s record and its BullMQ job are written in one MULTI, and nothing after it', async () => {
  const members = [await member(), await member()];
  // The members' ends wake the webhook delivery: let it settle, so the monitor sees the submission alone.
  await new Promise((r) => setTimeout(r, 500));
  const monitor = await redis.monitor();
  const seen: string[][] = [];
  const byScripts: string[] = [];
  monitor.on('monitor', (_time: string, argv: string[], source: string) => (source !== 'lua' ? seen.push(argv) : byScripts.push(argv.slice(0, 2).join(' '))));
  const res = await submit(members);
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  assert.equal(res.statusCode, 202, res.body);
  const id = res.json().id as string;
  const sent = seen.map((argv) => argv.slice(0, 2).join(' ').toLowerCase().slice(0, 80));
  const multi = sent.indexOf('multi');
  const exec = sent.indexOf('exec');
  assert.ok(multi >= 0 && exec > multi, sent.join('\n'));
  const inside = sent.slice(multi + 1, exec);
  // The record's script (lua/createJob-8.lua), then BullMQ's add script.
  assert.equal(inside.filter((c) => /^eval(sha)? /.test(c)).length, 2, `the record's and the queueing's scripts in the transaction:\n${inside.join('\n')}`);
  assert.ok(byScripts.includes(`HSET ${prefix}:job:${id}`), `the record written by a script:\n${byScripts.join('\n')}`);
  assert.deepEqual(sent.slice(exec + 1), [], 'nothing sent after the transaction');
  assert.equal(await redis.hget(`${prefix}:job:${id}`, 'status'), 'queued');
  assert.ok((await redis.lrange(`${prefix}-q:train-cpu:wait`, 0, -1)).includes(id), 'waiting for a dispatcher');
});

test('an ensemble submission logs one line, the completion line, naming the job and its tenant', async () => {
  const members = [await member(), await member()];
  logs = '';
  const res = await submit(members);
  assert.equal(res.statusCode, 202, res.body);
  const lines = logs.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => l.msg), ['request completed'], logs);
  assert.deepEqual([lines[0]!.jobId, lines[0]!.tenant, lines[0]!.resourceClass, lines[0]!.statusCode], [res.json().id, 'ens', 'cpu', 202]);
});

test('an oversized ensemble is refused with 413 before a quota place is taken, even at the limit', async () => {
  // Two members of 250 KB each, within a record's limit apiece, make an ensemble over it.
  const members = [await member(250_000), await member(250_000)];
  while ((await app.quotas.activeJobs('ens')) < LIMIT) {
    const filler = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset } });
    assert.equal(filler.statusCode, 202, filler.body);
  }
  const jobs = await redis.zcard(`${prefix}:tenant:ens:jobs`);
  const res = await submit(members);
  assert.equal(res.statusCode, 413, res.body.slice(0, 300));
  assert.equal(res.json().error.code, 'job_too_large');
  assert.equal(res.json().error.param, 'body');
  assert.equal(await app.quotas.activeJobs('ens'), LIMIT, 'no place taken');
  assert.equal(await redis.zcard(`${prefix}:tenant:ens:jobs`), jobs, 'no record stored');
});
