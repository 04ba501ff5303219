// A job takes its place in the tenant's active-job quota, gets its record and is queued in one step
// (lua/createJob-8.lua in the submission's MULTI). API versions before it took the place first, with a
// deadline by Redis's clock, and wrote the record after: an API process that died in between left a
// place naming a job that never gets a record. Such a place past its deadline is given back by the
// next submission; one whose job has a record never is.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { JobStore, queuedJob, refusalOf } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
});
after(async () => {
  redis?.disconnect();
  await server?.stop();
});

const job = (id: string, tenant: string) =>
  queuedJob({ id, tenant, kind: 'finetune', model: { family: 'tfidf' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null });

/** A submission's create step under a limit, as the API sends it (without the queueing): the refusal, or null. */
async function submit(jobs: JobStore, prefix: string, id: string, limit: number, datasetKeys: string[] = []) {
  const multi = redis.multi();
  jobs.createIn(multi, redis, job(id, 't'), undefined, { limit, datasetKeys, queueJobKey: `${prefix}-q:train-cpu:${id}` });
  const replies = await multi.exec();
  assert.equal(replies![0]![0], null);
  return refusalOf(replies![0]![1]);
}

/** A place as an earlier API's reservation left it when it died before writing the record. */
async function legacyPlace(prefix: string, id: string, deadlineMs: number) {
  const keys = redisKeys(prefix);
  const [seconds] = await redis.time();
  await redis.multi().sadd(keys.tenantActive('t'), id).zadd(keys.tenantReserving('t'), Number(seconds) * 1000 + deadlineMs, id).exec();
}

test('a place an earlier API left without a record counts until its deadline, then the next submission gives it back; a created job keeps its place', async () => {
  const prefix = uniquePrefix();
  const keys = redisKeys(prefix);
  const jobs = new JobStore(redis, keys);
  const [crashedLate, crashedEarly, created] = [newJobId(), newJobId(), newJobId()];
  await legacyPlace(prefix, crashedLate, 60_000); // within its deadline: its record may still come
  await legacyPlace(prefix, crashedEarly, -5_000); // past it
  assert.equal(await submit(jobs, prefix, created, 2), null, 'the expired place is given back first, so this one fits');
  assert.deepEqual((await redis.smembers(keys.tenantActive('t'))).sort(), [crashedLate, created].sort());
  assert.deepEqual(await redis.zrange(keys.tenantReserving('t'), 0, -1), [crashedLate]);
  const refused = newJobId();
  assert.deepEqual(await submit(jobs, prefix, refused, 2), { active: 2 }, 'the live place counts');
  assert.equal(await redis.exists(keys.job(refused)), 0, 'no record for the refused job');
  assert.equal(await redis.exists(`${prefix}-q:train-cpu:${refused}`), 1, 'the placeholder that stops its queueing');
  assert.ok((await redis.pttl(`${prefix}-q:train-cpu:${refused}`)) > 0, 'which expires');
  // A created job is never given back however old its place: only places without a record are.
  await redis.zadd(keys.tenantReserving('t'), 0, created);
  assert.deepEqual(await submit(jobs, prefix, newJobId(), 2), { active: 2 });
  assert.ok(await redis.sismember(keys.tenantActive('t'), created));
});

test('a record written after its place was given back takes the place again: nothing is lost', async () => {
  const prefix = uniquePrefix();
  const keys = redisKeys(prefix);
  const jobs = new JobStore(redis, keys);
  const slow = newJobId();
  await legacyPlace(prefix, slow, -5_000);
  const next = newJobId();
  assert.equal(await submit(jobs, prefix, next, 1), null, 'past its deadline with no record: given back');
  await jobs.create(job(slow, 't')); // the earlier API's late record
  assert.ok(await redis.sismember(keys.tenantActive('t'), slow), 'the late job counts');
  assert.deepEqual(await submit(jobs, prefix, newJobId(), 1), { active: 2 });
});

test('a submission checks its datasets before the limit, and a refused one writes nothing of the job', async () => {
  const prefix = uniquePrefix();
  const keys = redisKeys(prefix);
  const jobs = new JobStore(redis, keys);
  await redis.set(keys.dataset('ds_here'), '{}');
  const first = newJobId();
  assert.equal(await submit(jobs, prefix, first, 1, [keys.dataset('ds_here')]), null);
  const before = (await redis.keys(`${prefix}:*`)).sort();
  const second = newJobId();
  assert.deepEqual(await submit(jobs, prefix, second, 1, [keys.dataset('ds_here'), keys.dataset('ds_gone')]), { missing: 1 }, 'the gone dataset, though the limit is reached too');
  assert.deepEqual(await submit(jobs, prefix, second, 1, [keys.dataset('ds_here')]), { active: 1 });
  assert.deepEqual((await redis.keys(`${prefix}:*`)).sort(), before, 'no record, index entry, event or place');
});
