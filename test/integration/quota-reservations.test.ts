// A place in a tenant's active-job quota is taken (lua/reserveActiveJob-2.lua) before the job's
// record and queueing are written (JobStore.createIn in one MULTI): an API process that dies in
// between leaves a place naming a job that never gets a record. Each place carries a deadline by
// Redis's clock; past it, a place without a record is given back, one with a record never is.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobStore, queuedJob } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { TenantQuotas } from '../../services/api/src/tenancy/quotas.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const DEADLINE_MS = 400;
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

test('a place whose submitter died before writing the record comes back after its deadline; a created job keeps its place', async () => {
  const prefix = uniquePrefix();
  const quotas = new TenantQuotas(redis, prefix, DEADLINE_MS);
  const jobs = new JobStore(redis, redisKeys(prefix));
  const [crashed, created, waiting] = [newJobId(), newJobId(), newJobId()];
  // As a crash leaves it: the place taken, and nothing after.
  assert.equal(await quotas.reserveActiveJob('t', crashed, 2), null);
  // As a submission that lived: the place, then the record.
  assert.equal(await quotas.reserveActiveJob('t', created, 2), null);
  await jobs.create(job(created, 't'));
  assert.deepEqual(await quotas.reserveActiveJob('t', waiting, 2), { active: 2 }, 'within its deadline the place may still get its record: it counts');
  await sleep(DEADLINE_MS + 100);
  assert.equal(await quotas.reserveActiveJob('t', waiting, 2), null, 'the dead submitter\'s place is given back');
  assert.deepEqual((await redis.smembers(redisKeys(prefix).tenantActive('t'))).sort(), [created, waiting].sort());
  assert.equal(await quotas.activeJobs('t'), 2);
  await sleep(DEADLINE_MS + 100);
  // `waiting` has no record either, but a job that was created is never given back however old its place.
  await jobs.create(job(waiting, 't'));
  assert.deepEqual(await quotas.reserveActiveJob('t', newJobId(), 2), { active: 2 });
  assert.equal(await redis.zcard(redisKeys(prefix).tenantReserving('t')), 0, 'no deadline left behind');
});

test('a record written after its place was given back takes the place again: nothing is lost, the limit holds again', async () => {
  const prefix = uniquePrefix();
  const quotas = new TenantQuotas(redis, prefix, DEADLINE_MS);
  const jobs = new JobStore(redis, redisKeys(prefix));
  const slow = newJobId();
  assert.equal(await quotas.reserveActiveJob('t', slow, 1), null);
  await sleep(DEADLINE_MS + 100);
  const next = newJobId();
  assert.equal(await quotas.reserveActiveJob('t', next, 1), null, 'past its deadline with no record: given back');
  await jobs.create(job(slow, 't'));
  assert.ok(await redis.sismember(redisKeys(prefix).tenantActive('t'), slow), 'the late job counts');
  assert.deepEqual(await quotas.reserveActiveJob('t', newJobId(), 1), { active: 2 });
});
