// The dispatcher checks each reply of the study process against contracts/study-protocol.json: the
// real makam_study's replies pass; a study process that answers one op outside the contract (a small
// script given as the study's Python) fails that call, and the tune job coordinating it, with a
// StudyProtocolError naming the op and the field, never with an ill-typed value let through.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { createLogger } from '@makam/shared/logger';
import { createRedis, type Redis } from '@makam/shared/redis';
import { redisKeys } from '@makam/shared/keys';
import { newJobId } from '@makam/shared/ids';
import { BlobStore } from '@makam/shared/blob-store';
import { JobStore, queuedJob } from '@makam/shared/job-store';
import { queueName, tuneJobOptions, tuneQueueName, type TrainJobData } from '@makam/shared/queues';
import { studyKey, type Search } from '@makam/shared/tuning/search';
import { loadDispatcherConfig } from '../../services/dispatcher/src/config.ts';
import { StudyProtocolError } from '../../services/dispatcher/src/failures.ts';
import { StudyClient, checkStudyReply, defaultStudyPython } from '../../services/dispatcher/src/tuning/study-client.ts';
import { TuneCoordinator } from '../../services/dispatcher/src/tuning/tune-coordinator.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const log = createLogger('test', 'silent');
const search: Search = {
  space: { learning_rate: { type: 'float', low: 1e-5, high: 1e-2, log: true } },
  objective: { metric: 'macro_f1', direction: 'maximize' },
  trials: 2,
  parallelism: 1,
  sampler: 'random',
  pruner: { type: 'none' },
  seed: 0,
};

let redis: TestRedis;
let dir: string;

// A stand-in for `python -m makam_study`: answers every op as the contract says, except `ask`,
// whose result is `askResult` (written into the script).
async function fakeStudy(name: string, askResult: unknown): Promise<string> {
  const script = path.join(dir, `${name}.mjs`);
  await writeFile(
    script,
    `import { createInterface } from 'node:readline';
const results = { ping: {}, create: { created: true }, ask: ${JSON.stringify(askResult)}, report: { prune: false }, tell: { told: true },
  summary: { trials: [], best: null, importances: null }, fail_running: { failed: [] } };
createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, op } = JSON.parse(line);
  process.stdout.write(JSON.stringify({ id, ok: true, result: results[op] }) + '\\n');
});
`,
  );
  const python = path.join(dir, name);
  await writeFile(python, `#!/bin/sh\nexec '${process.execPath}' '${script}'\n`);
  await chmod(python, 0o755);
  return python;
}

before(async () => {
  redis = await startRedis();
  dir = await mkdtemp(path.join(tmpdir(), 'makam-study-replies-'));
});
after(async () => {
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("the real study process's replies pass the contract's result schemas", async () => {
  const client = new StudyClient(defaultStudyPython(), { REDIS_URL: redis.url }, log);
  try {
    const key = studyKey(uniquePrefix(), 'job_01jd0000000000000000000010');
    assert.deepEqual(await client.create(key, search), { created: true });
    const asked = await client.ask(key);
    assert.equal(asked.number, 0);
    assert.equal(typeof asked.params?.learning_rate, 'number');
    assert.deepEqual(await client.tell(key, 0, 'complete', 0.5), { told: true });
    const summary = await client.summary(key, true);
    assert.deepEqual(summary.best, { number: 0, value: 0.5, params: asked.params });
  } finally {
    client.close();
  }
});

test('a reply outside the contract fails its call with a StudyProtocolError naming the op and the field', async () => {
  const client = new StudyClient(await fakeStudy('wrong-type', { number: 'zero', params: {} }), { REDIS_URL: redis.url }, log);
  const key = studyKey(uniquePrefix(), 'job_01jd0000000000000000000011');
  try {
    assert.deepEqual(await client.create(key, search), { created: true }, 'a reply inside the contract passes');
    const err = await client.ask(key).then(
      () => assert.fail('an ill-typed result was let through'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StudyProtocolError, `a StudyProtocolError, not ${String(err)}`);
    assert.equal(err.code, 'study_protocol_error');
    assert.equal(err.op, 'ask');
    assert.equal(err.field, '/result/number');
    assert.match(err.message, /reply to ask .*\/result\/number/);
    // The process is still there and its next good reply still passes.
    assert.deepEqual(await client.tell(key, 0, 'fail', null), { told: true });
  } finally {
    client.close();
  }
  // A result missing a field, and an envelope that is neither ok nor a refusal.
  assert.throws(() => checkStudyReply('ask', { id: 1, ok: true, result: { number: 1 } }), (e: unknown) => e instanceof StudyProtocolError && e.op === 'ask' && /params/.test(e.message));
  assert.throws(() => checkStudyReply('tell', { id: 1, ok: true }), (e: unknown) => e instanceof StudyProtocolError && e.field === '/result');
  assert.throws(() => checkStudyReply('report', { id: 1, ok: 'yes', result: { prune: false } }), (e: unknown) => e instanceof StudyProtocolError && e.field === '/ok');
  assert.throws(() => checkStudyReply('summary', { id: 1, ok: false, error: { code: 'oops', message: 'x' } }), (e: unknown) => e instanceof StudyProtocolError && e.field === '/error');
  assert.throws(() => checkStudyReply('ask', { id: 1, ok: false, error: { code: 'not_found', message: 'no study' } }), /study not_found: no study/);
});

test('a tune job whose study replies outside the contract fails with study_protocol_error, naming the op and the field', async () => {
  const prefix = uniquePrefix();
  const config = loadDispatcherConfig({ REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_CLASS: 'cpu', MAKAM_TUNE_POLL_MS: '50', MAKAM_LOCK_MS: '5000' });
  const conn: Redis = createRedis(config);
  const keys = redisKeys(prefix);
  const jobs = new JobStore(conn, keys);
  const study = new StudyClient(await fakeStudy('fractional-number', { number: 1.5, params: { learning_rate: 0.001 } }), { REDIS_URL: redis.url }, log);
  const trainQueue = new Queue<TrainJobData>(queueName('cpu'), { connection: conn, prefix: config.MAKAM_QUEUE_PREFIX });
  const tuneQueue = new Queue<TrainJobData>(tuneQueueName('cpu'), { connection: conn, prefix: config.MAKAM_QUEUE_PREFIX });
  const coordinator = new TuneCoordinator({ config, log, redis: conn, keys, jobs, blobs: new BlobStore(dir), study, trainQueue, classWorkers: async () => 1 });
  try {
    const id = newJobId();
    const base = { id, tenant: 'acme', model: { family: 'tfidf' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null };
    await jobs.create(queuedJob({ ...base, kind: 'tune', search, study: null, best_trial: null, importances: null }));
    coordinator.start();
    await tuneQueue.add('tune', { jobId: id }, tuneJobOptions(id));
    let record = await jobs.get(id);
    for (let i = 0; i < 400 && record?.status !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      record = await jobs.get(id);
    }
    assert.equal(record?.status, 'failed');
    assert.equal(record.error?.code, 'study_protocol_error');
    assert.match(record.error.message, /reply to ask .*\/result\/number/);
    assert.deepEqual(await jobs.trials(id), [], 'no trial was made from the ill-formed reply');
  } finally {
    await coordinator.close();
    study.close();
    await trainQueue.close();
    await tuneQueue.close();
    conn.disconnect();
  }
});
