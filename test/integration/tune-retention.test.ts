// Retention removes a finished tune job's Optuna study with its record: the study lives in Redis
// under its own keys (the study process's journal: a counter, a snapshot, a key per log entry), so
// the dispatcher's sweep asks the real study process to delete it (the study protocol's `delete`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobStore } from '@makam/shared/blob-store';
import { createLogger } from '@makam/shared/logger';
import { JobStore, queuedJob } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { studyKey, type Search } from '@makam/shared/tuning/search';
import { sweepEndedJobs } from '../../services/dispatcher/src/dispatcher.ts';
import { StudyClient, defaultStudyPython } from '../../services/dispatcher/src/tuning/study-client.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;
let study: StudyClient;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
  study = new StudyClient(defaultStudyPython(), { REDIS_URL: server.url }, createLogger('test', 'silent'));
});
after(async () => {
  study?.close();
  redis?.disconnect();
  await server?.stop();
});

const search: Search = {
  space: { learning_rate: { type: 'float', low: 1e-5, high: 1e-3, log: true } },
  objective: { metric: 'macro_f1', direction: 'maximize' },
  trials: 2,
  parallelism: 1,
  sampler: 'random',
  pruner: { type: 'none' },
  seed: 0,
} as Search;

test('a tune job removed by retention takes its study\'s keys with it; a study of a job kept stays', async () => {
  const prefix = uniquePrefix();
  const keys = redisKeys(prefix);
  const jobs = new JobStore(redis, keys);
  const blobs = new BlobStore(await mkdtemp(path.join(tmpdir(), 'makam-tune-retention-')));
  const tune = async () => {
    const id = newJobId();
    await jobs.create(queuedJob({ id, tenant: 'acme', kind: 'tune', model: { family: 'tfidf' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null, search, study: null, best_trial: null, importances: null }));
    await jobs.transition(id, 'running', { attempts: 1 });
    const key = studyKey(prefix, id);
    await study.create(key, search);
    const { number } = await study.ask(key);
    assert.notEqual(number, null, 'a trial to run');
    await study.tell(key, number!, 'complete', 0.5);
    return { id, key };
  };
  const [ended, running] = [await tune(), await tune()];
  await jobs.transition(ended.id, 'succeeded', { finished_at: new Date().toISOString() });
  assert.ok((await redis.keys(`${ended.key}:*`)).length >= 3, 'the study is in Redis under its key');

  const removeStudy = (id: string) => study.delete(studyKey(prefix, id));
  assert.equal(await sweepEndedJobs(jobs, blobs, 0, undefined, removeStudy), 1);
  assert.equal(await jobs.get(ended.id), null, 'the record is removed');
  assert.deepEqual(await redis.keys(`${ended.key}:*`), [], 'and its study');
  assert.ok((await redis.keys(`${running.key}:*`)).length >= 3, 'a running tune job keeps its study');
  assert.equal((await study.summary(running.key)).trials.length, 1);
});
