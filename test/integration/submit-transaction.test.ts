// POST /v1/jobs writes the job's record and queues it in one Redis transaction (queues.ts
// addJobWith): a queued record always has its BullMQ job, and a queueing that fails in Redis leaves
// no job queued forever and no place taken in the tenant's quota. Its one log line names the job.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createRedis, type Redis } from '@makam/shared/redis';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

let api: InjectApi;
let redis: Redis;
let app: FastifyInstance;
let prefix: string;
let dataset: string;
let logs = '';
const auth = () => ({ authorization: `Bearer ${api.key}` });
const submit = () => app.inject({ method: 'POST', url: '/v1/jobs', headers: auth(), payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset } });

before(async () => {
  const sink = new Writable({ write: (chunk, _e, cb) => ((logs += chunk.toString()), cb()) });
  api = await startInjectApi({ tenant: 'tx', logger: pino({ level: 'info' }, sink) });
  ({ app, prefix } = api);
  redis = createRedis(api.redis.url);
  dataset = (await api.upload({ rows: 30, name: 'tx' })).id;
});
after(async () => {
  redis?.disconnect();
  await api?.close();
});

test('a submitted job has its record and its BullMQ job, written in one MULTI', async () => {
  const monitor = await redis.monitor();
  const seen: string[][] = [];
  const byScripts: string[] = [];
  monitor.on('monitor', (_time: string, argv: string[], source: string) => (source !== 'lua' ? seen.push(argv) : byScripts.push(argv.slice(0, 2).join(' '))));
  const res = await submit();
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  assert.equal(res.statusCode, 202, res.body);
  const id = res.json().id as string;
  // The transaction as the client sent it (a script's own calls are in byScripts).
  const sent = seen.map((argv) => argv.slice(0, 2).join(' ').toLowerCase().slice(0, 80));
  const multi = sent.indexOf('multi');
  const exec = sent.indexOf('exec');
  assert.ok(multi >= 0 && exec > multi, sent.join('\n'));
  const inside = sent.slice(multi + 1, exec);
  // The quota place, the record (lua/createJob-8.lua), then BullMQ's add script: the whole submission after the front door.
  assert.equal(inside.filter((c) => /^eval(sha)? /.test(c)).length, 2, `the record's and the queueing's scripts in the transaction:\n${inside.join('\n')}`);
  assert.equal(sent.slice(0, multi).filter((c) => /^eval(sha)? /.test(c)).length, 1, `one script before it, the front door's:\n${sent.slice(0, multi).join('\n')}`);
  assert.ok(byScripts.includes(`HSET ${prefix}:job:${id}`), `the record written by a script:\n${byScripts.join('\n')}`);
  assert.equal(sent.slice(exec + 1).length, 0, `nothing sent after the transaction:\n${sent.slice(exec + 1).join('\n')}`);
  assert.equal(await redis.hget(`${prefix}:job:${id}`, 'status'), 'queued');
  const queued = await redis.hgetall(`${prefix}-q:train-cpu:${id}`);
  assert.equal(queued.name, 'train');
  assert.deepEqual(JSON.parse(queued.data!), { jobId: id });
  assert.equal(JSON.parse(queued.opts!).attempts, app.config.MAKAM_JOB_ATTEMPTS, "makam's job options, as Queue.add would store them");
  assert.ok((await redis.lrange(`${prefix}-q:train-cpu:wait`, 0, -1)).includes(id), 'waiting for a dispatcher');
  assert.ok(await redis.sismember(`${prefix}:tenant:tx:active`, id), 'its place in the quota');
  // ioredis copies each script of the MULTI's connection onto the MULTI: its connection has BullMQ's add script and the record's alone, not the queue's ~60.
  assert.deepEqual(Object.keys(app.submitConnection.scriptsSet).map((name) => (name.startsWith('makam:') ? name : name.split(':')[0])).sort(), ['addStandardJob', 'makam:createJob']);
});

test('a queueing that Redis refuses marks the stored record failed and gives the quota place back', async () => {
  // BullMQ's add script INCRs the queue's id counter: a counter that is no number makes it fail
  // inside the transaction, after the record's writes.
  await redis.set(`${prefix}-q:train-cpu:id`, 'not a number');
  try {
    const res = await submit();
    assert.equal(res.statusCode, 500, res.body);
    const [id] = await redis.zrange(`${prefix}:tenant:tx:jobs`, 0, 0, 'REV');
    const job = (await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: auth() })).json();
    assert.equal(job.status, 'failed');
    assert.equal(job.error.code, 'enqueue_failed');
    assert.equal(await redis.sismember(`${prefix}:tenant:tx:active`, id!), 0, 'the place is given back');
    assert.equal(await redis.exists(`${prefix}-q:train-cpu:${id}`), 0, 'nothing queued');
  } finally {
    await redis.del(`${prefix}-q:train-cpu:id`);
  }
  assert.equal((await submit()).statusCode, 202, 'the queue works again');
});

test('a submission logs one line, the completion line, and it names the job and its tenant', async () => {
  logs = '';
  const res = await submit();
  assert.equal(res.statusCode, 202, res.body);
  const lines = logs.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 1, logs);
  assert.equal(lines[0]!.msg, 'request completed');
  assert.deepEqual([lines[0]!.jobId, lines[0]!.tenant, lines[0]!.resourceClass, lines[0]!.statusCode], [res.json().id, 'tx', 'cpu', 202]);
});
