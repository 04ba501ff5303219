// A primary with min-replicas-to-write and its replica away (SIGSTOP, past min-replicas-max-lag)
// refuses every write with NOREPLICAS. The API's requests then answer 503 no_replicas after about
// MAKAM_REDIS_NOREPLICAS_WAIT_MS instead of hanging as long as the replica is away; /healthz
// and reads answer meanwhile; once the replica is back the same requests succeed and what was stored before
// is still there. Real redis-server processes: a primary, a replica, three sentinels (support/sentinel.ts).
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { isNoReplicas } from '../../services/api/src/errors.ts';
import { JobStore, queuedJob } from '@makam/shared/job-store';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { createRedis, execTransaction } from '@makam/shared/redis';
import { Telemetry, emptyLag, observeLag } from '@makam/shared/telemetry';
import { WebhookStore } from '../../services/api/src/webhooks/webhook-store.ts';
import { ApiKeyStore } from '../../services/api/src/tenancy/api-keys.ts';
import { withIdempotency } from '../../services/api/src/idempotency.ts';
import { createKey } from '../support/keys.ts';
import { uniquePrefix } from '../support/redis.ts';
import { startSentinelRedis, type SentinelRedis } from '../support/sentinel.ts';
import { ROOT } from '../support/stack.ts';

const WAIT_MS = 1500;
let dir: string;
let redis: SentinelRedis;
let app: FastifyInstance;
let key: string;
let primary: Redis; // straight to the primary: no reconnect, no resend
let prefix: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-noreplicas-'));
  redis = await startSentinelRedis(dir); // min-replicas-to-write 1, min-replicas-max-lag 2 s
  prefix = uniquePrefix();
  const config = loadApiConfig({
    ...redis.settings,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: path.join(dir, 'store'),
    MAKAM_REDIS_NOREPLICAS_WAIT_MS: String(WAIT_MS),
  });
  app = await buildApp(config);
  key = await createKey(redis.settings, prefix, 'acme');
  primary = new Redis({ port: redis.ports.data[0]!, host: '127.0.0.1', maxRetriesPerRequest: 0 });
  primary.on('error', () => {});
});
after(async () => {
  primary?.disconnect();
  await app?.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const call = (o: InjectOptions) => app.inject({ ...o, headers: { authorization: `Bearer ${key}`, ...o.headers } });
/** The answer and how long it took; a request still unanswered well past the bound is a hang. */
async function timed(o: InjectOptions): Promise<{ status: number; body: any; retryAfter: string | undefined; ms: number }> {
  const t0 = Date.now();
  const giveUp = new AbortController();
  const res = await Promise.race([call(o), sleep(WAIT_MS + 10_000, null, { signal: giveUp.signal }).catch(() => null)]).finally(() => giveUp.abort());
  const ms = Date.now() - t0;
  assert.ok(res, `${o.method} ${o.url} still unanswered after ${ms} ms: it hangs while the replica is away`);
  return { status: res.statusCode, body: res.json(), retryAfter: res.headers['retry-after'] as string | undefined, ms };
}
const primaryTakesWrites = async () => (await primary.set('noreplicas-test:probe', '1').then(() => true, (err: Error) => (isNoReplicas(err) ? false : Promise.reject(err))));
async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('with no replica in reach a write answers 503 no_replicas within MAKAM_REDIS_NOREPLICAS_WAIT_MS; /healthz and reads answer; once it is back the same request succeeds', { timeout: 120_000 }, async () => {
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8');
  const upload: InjectOptions = { method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl', 'idempotency-key': 'noreplicas-upload' }, payload: sample };
  const stored = await timed({ ...upload, headers: { ...upload.headers, 'idempotency-key': 'noreplicas-first' } });
  assert.equal(stored.status, 201, JSON.stringify(stored.body));
  const submit: InjectOptions = {
    method: 'POST',
    url: '/v1/jobs',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'noreplicas-submit' },
    payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: stored.body.id, hyperparameters: { validation_fraction: 0.2 } },
  };

  const earlier = await timed({ ...submit, headers: { 'content-type': 'application/json' } });
  assert.equal(earlier.status, 202, JSON.stringify(earlier.body));

  const [, replicaPort] = redis.ports.data as [number, number];
  let dispatcherRedis: Redis | undefined;
  redis.pause(replicaPort);
  try {
    await until('the primary to refuse writes (NOREPLICAS)', async () => !(await primaryTakesWrites()), 20_000);
    // A MULTI the primary refuses is discarded whole (EXECABORT); known for what it is too.
    const multi = await primary.multi().set('noreplicas-test:m', '1').exec().catch((err: Error) => err);
    assert.ok(multi instanceof Error && isNoReplicas(multi), String(multi));

    let submitAnswered = false;
    const refusing = timed(submit).finally(() => (submitAnswered = true));
    await sleep(200);
    const health = await call({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assert.equal(submitAnswered, false, '/healthz answered while the submit waited');
    // A dispatcher's write (here a tune's trial record) waits for the replica rather than failing.
    dispatcherRedis = createRedis(redis.settings);
    dispatcherRedis.on('error', () => {});
    const trialId = newJobId();
    let trialCreated = false;
    const creating = new JobStore(dispatcherRedis, redisKeys(prefix))
      .create(queuedJob({ id: trialId, tenant: 'acme', kind: 'trial', parent: earlier.body.id, trial: { number: 0, params: {}, study: 'study', objective: { metric: 'accuracy', direction: 'maximize' }, state: 'running', value: null, told: false }, model: { family: 'tfidf' }, dataset: stored.body.id, validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null }))
      .then(() => (trialCreated = true));
    const refused = await refusing;
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'no_replicas');
    assert.match(refused.body.error.message, /no replica in reach/);
    assert.match(refused.body.error.message, /MAKAM_REDIS_NOREPLICAS_WAIT_MS/);
    assert.match(refused.body.error.message, /retry after Retry-After/);
    assert.ok(Number(refused.retryAfter) >= 1, `a Retry-After (${refused.retryAfter})`);
    assert.ok(refused.ms < WAIT_MS + 3000, `answered within the bound (${refused.ms} ms, MAKAM_REDIS_NOREPLICAS_WAIT_MS ${WAIT_MS})`);

    const uploadRefused = await timed(upload);
    assert.equal(uploadRefused.status, 503, JSON.stringify(uploadRefused.body));
    assert.equal(uploadRefused.body.error.code, 'no_replicas');
    assert.ok(uploadRefused.ms < WAIT_MS + 3000, `the upload answered within the bound (${uploadRefused.ms} ms)`);

    // Reads go on: the front door reads its counts instead of taking them (lua/admit-3.lua).
    const read = await timed({ method: 'GET', url: `/v1/jobs/${earlier.body.id}` });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.status, 'queued');
    assert.ok(read.ms < WAIT_MS, `a read waits for no replica (${read.ms} ms)`);
    const dataset = await timed({ method: 'GET', url: `/v1/datasets/${stored.body.id}` });
    assert.equal(dataset.status, 200, JSON.stringify(dataset.body));
    console.log(`no replicas: the submit answered 503 in ${refused.ms} ms, the upload after it in ${uploadRefused.ms} ms (MAKAM_REDIS_NOREPLICAS_WAIT_MS ${WAIT_MS})`);
    assert.equal(trialCreated, false, 'the trial record waits for the replica');
    redis.resume(replicaPort);
    await creating;
    assert.equal(await primary.hget(`${prefix}:job:${trialId}`, 'status'), 'queued', 'written once the replica is back');
  } finally {
    redis.resume(replicaPort);
    dispatcherRedis?.disconnect();
  }

  await until('the primary to take writes again', primaryTakesWrites, 20_000);
  const accepted = await timed(submit);
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  const uploaded = await timed(upload);
  assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
  // What was stored before the replica went away is still there.
  const before = await timed({ method: 'GET', url: `/v1/datasets/${stored.body.id}` });
  assert.equal(before.status, 200, JSON.stringify(before.body));
  const job = await timed({ method: 'GET', url: `/v1/jobs/${accepted.body.id}` });
  assert.equal(job.status, 200, JSON.stringify(job.body));
});

test('a MULTI a dispatcher or the API\'s background sends while no replica is in reach is written once, whole, when it is back; a request\'s answers 503 no_replicas; heartbeats are skipped', { timeout: 120_000 }, async () => {
  await until('the primary to take writes', primaryTakesWrites, 20_000);
  const keys = redisKeys(prefix);
  // Made before the outage: a job to remove and a webhook to log a delivery of.
  const setup = createRedis(redis.settings);
  setup.on('error', () => {});
  const doomed = newJobId();
  await new JobStore(setup, keys).create(queuedJob({ id: doomed, tenant: 'acme', kind: 'finetune', parent: null, model: { family: 'tfidf' }, dataset: 'ds_none', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null }));
  const { record: hook } = await new WebhookStore(setup, prefix).create('acme', 'https://example.com/hook', ['job.succeeded'], null);
  setup.disconnect();
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8');
  const uploaded = await timed({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/jsonl' }, payload: sample });
  assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
  const dataset = uploaded.body.id as string;
  const counter = `${prefix}:noreplicas-test:counter`;
  const list = `${prefix}:noreplicas-test:list`;

  const [, replicaPort] = redis.ports.data as [number, number];
  let minted: { key: string; record: { id: string } } | undefined;
  // Dispatchers' and background connections: no noReplicasWaitMs, they wait for the replica.
  const waiting = createRedis(redis.settings);
  waiting.on('error', () => {});
  redis.pause(replicaPort);
  try {
    await until('the primary to refuse writes (NOREPLICAS)', async () => !(await primaryTakesWrites()), 20_000);
    // Each one's outcome, so that a failure names which was lost.
    const done = new Set<string>();
    const track = (name: string, p: Promise<unknown>) => p.then(() => (done.add(name), 'written'), (err: Error) => `refused: ${err.message}`);
    // Not idempotent: sent again after a refusal that had applied part of it, it would count twice.
    const counted = track('incr', execTransaction(waiting, () => waiting.multi().incr(counter).rpush(list, 'x')));
    const removed = track('remove', new JobStore(waiting, keys).remove(doomed));
    const logged = track('log', new WebhookStore(waiting, prefix).logAttempt(hook.id, { object: 'webhook_delivery', event_id: 'evt_1', event_type: 'job.succeeded', job_id: doomed, attempt: 1, response_status: 200, error: null, ok: true, will_retry: false, duration_ms: 5, created_at: new Date().toISOString() }));
    // An admin minting a key (makam-admin keys create): its record and index entry, whole.
    const keyed = track('apikey', new ApiKeyStore(waiting, prefix).create('acme', 'during-outage').then((k) => (minted = k)));

    // Heartbeats are skipped, not waited for: a refused worker listing fails at once (the dispatcher
    // logs it at debug and publishes again in 10 s) and a lag batch stays for the next flush.
    const telemetry = new Telemetry(waiting, prefix);
    const t0 = Date.now();
    const published = await telemetry.publishWorker({ object: 'worker', address: 'w:1', resource_class: 'cpu', worker_id: 'w', device: 'cpu', gpu_name: '', memory_total_bytes: 0, memory_free_bytes: 0, active_runs: 0, families: [], versions: {}, seen_at: new Date().toISOString() }, 30).catch((err: Error) => err);
    assert.ok(published instanceof Error && isNoReplicas(published), `a refused heartbeat fails at once (${String(published)})`);
    const lag = emptyLag();
    observeLag(lag, 0.1);
    const flushed = await telemetry.addLag('cpu', lag).catch((err: Error) => err);
    assert.ok(flushed instanceof Error && isNoReplicas(flushed), String(flushed));
    assert.ok(Date.now() - t0 < WAIT_MS, `heartbeats do not wait (${Date.now() - t0} ms)`);

    // A request's MULTI (a submission without Idempotency-Key: the record and the queueing) gives up
    // after MAKAM_REDIS_NOREPLICAS_WAIT_MS with 503 no_replicas, like its single writes.
    const submitted = await timed({ method: 'POST', url: '/v1/jobs', headers: { 'content-type': 'application/json' }, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset, hyperparameters: { validation_fraction: 0.2 } } });

    await sleep(500);
    assert.deepEqual([...done], [], 'the transactions wait for the replica');
    assert.equal(await primary.get(counter), null);
    assert.equal(await primary.exists(keys.job(doomed)), 1);
    redis.resume(replicaPort);
    assert.deepEqual({ counted: await counted, removed: await removed, logged: await logged, keyed: await keyed }, { counted: 'written', removed: 'written', logged: 'written', keyed: 'written' });
    assert.equal(submitted.status, 503, JSON.stringify(submitted.body));
    assert.equal(submitted.body.error.code, 'no_replicas');
    assert.ok(submitted.ms >= WAIT_MS - 200, `the submission waited for the replica first (${submitted.ms} ms)`);
  } finally {
    redis.resume(replicaPort);
    waiting.disconnect();
  }
  assert.equal(await primary.get(counter), '1', 'the counting MULTI applied exactly once');
  assert.deepEqual(await primary.lrange(list, 0, -1), ['x']);
  assert.equal(await primary.exists(keys.job(doomed)), 0, 'the job removed once the replica is back');
  assert.equal(await primary.zscore(keys.jobs, doomed), null);
  const log = await new WebhookStore(primary, prefix).deliveries(hook.id, 10);
  assert.deepEqual(log.map((d) => d.event_id), ['evt_1'], 'the delivery logged once');
  assert.equal(await primary.exists(`${prefix}:worker:cpu:w:1`), 0, 'the skipped heartbeat was not written later');
  const keys2 = new ApiKeyStore(primary, prefix);
  assert.equal((await keys2.verify(minted!.key))?.id, minted!.record.id, 'the key minted during the outage works');
  assert.ok((await keys2.list('acme')).some((k) => k.id === minted!.record.id), 'and is listed');
});

test('an Idempotency-Key claimed just before the replica went away is freed once it is back after a refusal, and keeps a made answer for the retry to replay', { timeout: 120_000 }, async () => {
  await until('the primary to take writes', primaryTakesWrites, 20_000);
  const [, replicaPort] = redis.ports.data as [number, number];
  const made = `${prefix}:noreplicas-test:made`;
  const entryOf = (key: string) => primary.get(`${prefix}:idem:acme:jobs:${createHash('sha256').update(key).digest('hex')}`);
  // The claim goes through; the replica goes away while the request works.
  const outage = async () => {
    redis.pause(replicaPort);
    await until('the primary to refuse writes (NOREPLICAS)', async () => !(await primaryTakesWrites()), 20_000);
  };
  const back = async () => {
    redis.resume(replicaPort);
    await until('the primary to take writes again', primaryTakesWrites, 20_000);
  };
  try {
    // 1. The request's own write is refused: the key is freed once the replica is back, not 120 s later.
    const refused = await withIdempotency(app, 'acme', 'jobs', 'noreplicas-release', 'fp1', async () => {
      await outage();
      await app.redis.incr(made); // refused after MAKAM_REDIS_NOREPLICAS_WAIT_MS
      return { status: 202, body: { id: 'never' } };
    }).catch((err: Error) => err);
    assert.ok(refused instanceof Error && isNoReplicas(refused), String(refused));
    await back();
    await until('the claim to be freed', async () => (await entryOf('noreplicas-release')) === null, 10_000);
    const retried = await withIdempotency(app, 'acme', 'jobs', 'noreplicas-release', 'fp1', async () => ({ status: 202, body: { id: 'second' } }));
    assert.deepEqual(retried, { status: 202, body: { id: 'second' } }, 'the retry goes through, not 409 in progress');
    // A release that comes late (the claim expired, another request's took its place) frees nothing.
    await app.idempotency.release('acme', 'jobs', 'noreplicas-release', JSON.stringify({ pending: true, fingerprint: 'fp1', claim: 'an-earlier-one' }));
    assert.equal(JSON.parse((await entryOf('noreplicas-release'))!).body.id, 'second');

    // 2. What the request made is kept, its answer refused: stored once the replica is back, so the
    // retry replays it instead of making it again.
    let produced = 0;
    const produce = async () => {
      produced++;
      await app.redis.incr(made);
      await outage();
      return { status: 202, body: { id: 'made-once' } };
    };
    const kept = await withIdempotency(app, 'acme', 'jobs', 'noreplicas-complete', 'fp2', produce).catch((err: Error) => err);
    assert.ok(kept instanceof Error && isNoReplicas(kept), String(kept));
    await back();
    await until('the answer to be stored', async () => JSON.parse((await entryOf('noreplicas-complete')) ?? '{"pending":true}').pending !== true, 10_000);
    const replayed = await withIdempotency(app, 'acme', 'jobs', 'noreplicas-complete', 'fp2', produce);
    assert.deepEqual(replayed, { status: 202, body: { id: 'made-once' } });
    assert.equal(produced, 1, 'made once');
    assert.equal(await primary.get(made), '1');
  } finally {
    redis.resume(replicaPort);
  }
});
