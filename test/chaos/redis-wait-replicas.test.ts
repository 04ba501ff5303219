// MAKAM_REDIS_WAIT_REPLICAS: with the replica paused (SIGSTOP: it neither applies nor acknowledges
// the replication stream), a job submit (keyed or not), a dataset upload and a cancel answer 503
// not_replicated after about MAKAM_REDIS_WAIT_MS instead of an answer the failover could take back; once the replica is back, a retry with the same
// Idempotency-Key answers 202 with the first request's job: one job, no quota place left over. An
// unkeyed 503 names the job or dataset the primary stored (job_id, dataset_id), to poll, not repeat.
// Real redis-server processes (a primary, a replica, three sentinels: support/sentinel.ts).
//
// Not shown here: that without the setting such a 202 is lost when the primary dies. A paused
// replica's kernel still takes the stream into its socket buffer, and it applies it once resumed,
// so the write survives; losing it takes a network partition, which this machine cannot make.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRedis } from '@makam/shared/redis';
import { redisKeys } from '@makam/shared/keys';
import { startSentinelRedis, type SentinelRedis } from '../support/sentinel.ts';
import { startStack, type Stack } from '../support/stack.ts';

const WAIT_MS = 500;
let dir: string;
let redis: SentinelRedis;
let stack: Stack;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-wait-'));
  // Production's min-replicas-max-lag: the primary goes on taking writes for up to 10 s after its
  // replica stopped answering, the window the setting closes.
  redis = await startSentinelRedis(dir, { maxLagS: 10 });
  // gpu-4g has no dispatcher here: a job placed there stays queued, for the cancel.
  stack = await startStack(redis.settings, { apiEnv: { MAKAM_REDIS_WAIT_REPLICAS: '1', MAKAM_REDIS_WAIT_MS: String(WAIT_MS), MAKAM_RESOURCE_CLASSES: 'cpu,gpu-4g' } });
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const post = async (body: unknown, key?: string) => {
  const res = await stack.api('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
};

test('a submit, upload or cancel the replica has not confirmed answers 503 not_replicated; the keyed retry answers 202, one job', { timeout: 300_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const body = { kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { validation_fraction: 0.2 } };

  let t0 = Date.now();
  const healthy = await post(body);
  const healthyMs = Date.now() - t0;
  assert.equal(healthy.status, 202, JSON.stringify(healthy.body));
  const first = healthy.body as { id: string };
  const parked = await post({ ...body, resource_class: 'gpu-4g' });
  assert.equal(parked.status, 202, JSON.stringify(parked.body));

  const [, replicaPort] = redis.ports.data as [number, number];
  redis.pause(replicaPort);
  let keyedId: string | undefined, unkeyedId: string;
  try {
    t0 = Date.now();
    const refused = await post(body, 'wait-key-1');
    const refusedMs = Date.now() - t0;
    const error = (refused.body as { error: { code: string; message: string; job_id?: string } }).error;
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(error.code, 'not_replicated');
    assert.match(error.message, /same Idempotency-Key/);
    keyedId = error.job_id;
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'a Retry-After');
    assert.ok(refusedMs >= WAIT_MS && refusedMs < WAIT_MS + 2000, `answered after the WAIT's ${WAIT_MS} ms (took ${refusedMs} ms)`);
    // Without a key the WAIT goes on the queue's connection, which sent the job's transaction. The
    // job is stored already: the answer names it, to be looked up rather than submitted again.
    const unkeyed = await post(body);
    assert.equal(unkeyed.status, 503, JSON.stringify(unkeyed.body));
    unkeyedId = unkeyed.body.error.job_id as string;
    assert.match(unkeyedId ?? '', /^job_/, JSON.stringify(unkeyed.body));
    assert.ok(unkeyed.body.error.message.includes(`poll GET /v1/jobs/${unkeyedId} rather than repeating`), unkeyed.body.error.message);
    const stored = await stack.json(`/v1/jobs/${unkeyedId}`);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    const upload = await stack.uploadSample();
    assert.equal(upload.status, 503, JSON.stringify(upload.body));
    assert.equal(upload.body.error.code, 'not_replicated');
    const storedDataset = await stack.json(`/v1/datasets/${upload.body.error.dataset_id}`);
    assert.equal(storedDataset.status, 200, JSON.stringify(upload.body));
    const cancel = await stack.json(`/v1/jobs/${parked.body.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 503, JSON.stringify(cancel.body));
    assert.equal(cancel.body.error.code, 'not_replicated');
    // A request waiting for the replicas holds up no other: a read sent while the repeated cancel
    // waits is answered before it (a WAIT on the requests' shared connection would hold the read).
    let waited = false;
    const repeat = stack.json(`/v1/jobs/${parked.body.id}/cancel`, { method: 'POST' }).finally(() => (waited = true));
    await new Promise((r) => setTimeout(r, 50));
    const read = await stack.json(`/v1/jobs/${first.id}`);
    assert.equal(read.status, 200);
    assert.equal(waited, false, 'the read was answered while the cancel still waited for the replica');
    assert.equal((await repeat).status, 503);
    // A retry while the replica is still away replays nothing unconfirmed.
    const again = await post(body, 'wait-key-1');
    assert.equal(again.status, 503, JSON.stringify(again.body));
    console.log(`wait: a submit took ${healthyMs} ms with the replica up; ${refusedMs} ms to 503 with it paused (MAKAM_REDIS_WAIT_MS ${WAIT_MS})`);
  } finally {
    redis.resume(replicaPort);
  }

  t0 = Date.now();
  const retried = await post(body, 'wait-key-1');
  assert.equal(retried.status, 202, JSON.stringify(retried.body));
  console.log(`wait: the keyed retry after SIGCONT answered 202 in ${Date.now() - t0} ms`);
  const job = retried.body as { id: string };
  assert.equal(job.id, keyedId, 'the keyed 503 named the job its retry answers');
  const cancelled = await stack.json(`/v1/jobs/${parked.body.id}/cancel`, { method: 'POST' });
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.status, 'cancelled');
  assert.notEqual(job.id, first.id);
  // The healthy and parked jobs, the unkeyed one the primary kept although it answered 503, one for the key.
  const ids = ((await (await stack.api('/v1/jobs?limit=100')).json()) as { data: { id: string }[] }).data.map((j) => j.id);
  assert.equal(ids.length, 4, `four jobs: ${ids}`);
  const expected = [first.id, parked.body.id, unkeyedId, job.id];
  assert.ok(expected.every((id) => ids.includes(id)), `${expected} in ${ids}`);

  // Every quota place held is a job's that exists (a second reservation for the key would be left over).
  const conn = createRedis(redis.settings);
  try {
    const places = await conn.smembers(redisKeys(stack.prefix).tenantActive('e2e'));
    for (const id of places) assert.ok(ids.includes(id), `a quota place for ${id}, which is no job`);
  } finally {
    conn.disconnect();
  }
}));
