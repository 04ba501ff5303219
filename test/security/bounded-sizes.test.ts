// Redis and gRPC stay bounded whatever the input: the largest job record, event and webhook delivery
// job stay under their stated limits even for labels far past what ingest allows (datasets written
// straight into the store), a run with a huge report still delivers its model, the webhook cap holds
// under parallel creations, and jobs past their retention are removed with everything they own.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobStore } from '@makam/shared/blob-store';
import { DatasetStore } from '@makam/shared/dataset-store';
import { JobStore, MAX_JOB_EVENT_BYTES, MAX_JOB_RECORD_BYTES, MAX_JOB_RESULT_BYTES, MAX_NEW_JOB_BYTES, queuedJob, type JobEvent } from '@makam/shared/job-store';
import { MAX_WEBHOOKS_PER_TENANT } from '../../services/api/src/webhooks/webhook-store.ts';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newDatasetId, newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { sweepEndedJobs } from '../../services/dispatcher/src/dispatcher.ts';
import { MAX_DELIVERY_JOB_DATA_BYTES, MAX_WEBHOOK_BODY_BYTES, WEBHOOK_QUEUE } from '../../services/api/src/webhooks/delivery.ts';
import { startOpsApp, type OpsApp } from '../ops/app.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { eventually, startStack, type Stack } from '../support/stack.ts';

let redis: TestRedis;
let conn: Redis;

before(async () => {
  redis = await startRedis();
  conn = createRedis(redis.url);
});
after(async () => {
  conn?.disconnect();
  await redis?.stop();
});

/** Bytes of a hash: every field name and value. */
async function hashBytes(key: string): Promise<number> {
  const h = await conn.hgetall(key);
  return Object.entries(h).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
}

/** The largest entry of a stream, in bytes. */
async function largestEntry(key: string): Promise<number> {
  const entries = await conn.xrange(key, '-', '+');
  return Math.max(0, ...entries.map(([, f]) => f.reduce((n, x) => n + Buffer.byteLength(x), 0)));
}

const hugeLabels = (n: number, bytes: number): string[] => Array.from({ length: n }, (_, i) => `${'abcdefghij'[i]}`.repeat(bytes));

function hugeResult(labels: string[]): Record<string, unknown> {
  const evaluation = {
    split: 'test',
    accuracy: 0.9,
    macro_f1: 0.7,
    majority_label: labels[0],
    per_class: Object.fromEntries(labels.map((l) => [l, { precision: 1, recall: 1, f1: 1, support: 3 }])),
    confusion_matrix: { labels, matrix: labels.map(() => labels.map(() => 1)) },
  };
  return { family: 'tfidf', accuracy: 0.9, macro_f1: 0.7, weighted_f1: 0.8, test: evaluation, validation: evaluation };
}

test('the store bounds every record and event it writes, whatever a run reports', async () => {
  const keys = redisKeys(uniquePrefix());
  const jobs = new JobStore(conn, keys);
  const base = { tenant: 'acme', kind: 'finetune' as const, model: { family: 'tfidf' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null };
  const id = newJobId();
  await jobs.create(queuedJob({ id, ...base }));
  await jobs.transition(id, 'running', { attempts: 1, worker: '127.0.0.1:1' });
  const labels = hugeLabels(10, 500_000);
  const started: JobEvent = { type: 'started', attempt: 1, worker: 'w', pid: 1, device: 'cpu', train_examples: 60, validation_examples: 0, total_steps: 1, labels };
  await jobs.appendWorkerEvent(id, 1, started, { progress: { epoch: 0, step: 0, total_steps: 1 } });
  await jobs.appendWorkerEvent(id, 2, { type: 'log', attempt: 1, level: 'info', message: 'x'.repeat(2_000_000) });
  await jobs.update(id, { error: { code: 'x', message: 'y'.repeat(1_000_000) } });
  await jobs.transition(id, 'succeeded', { result: hugeResult(labels), artifact: { sha256: 'a', size_bytes: 1 }, finished_at: new Date().toISOString() });

  const record = await hashBytes(keys.job(id));
  const event = await largestEntry(keys.jobEvents(id));
  console.log(`store: record ${record} bytes (limit ${MAX_JOB_RECORD_BYTES}), largest event ${event} bytes (limit ${MAX_JOB_EVENT_BYTES})`);
  assert.ok(record <= MAX_JOB_RECORD_BYTES, `record ${record}`);
  assert.ok(event <= MAX_JOB_EVENT_BYTES, `event ${event}`);
  const job = (await jobs.get(id))!;
  assert.ok(Buffer.byteLength(JSON.stringify(job.result)) <= MAX_JOB_RESULT_BYTES);
  assert.equal(job.result!.truncated, true, 'the result says it is a summary');
  assert.equal(job.result!.accuracy, 0.9, 'the headline figures stay');
  assert.equal(job.status, 'succeeded');

  // A request that would make a record past the limit is refused (the API answers it as a coded 413).
  await assert.rejects(jobs.create(queuedJob({ id: newJobId(), ...base, model: { family: 'tfidf', config: { x: 'y'.repeat(MAX_NEW_JOB_BYTES) } } })), (err: Error & { statusCode?: number; code?: string }) => {
    assert.equal(err.statusCode, 413);
    assert.equal(err.code, 'job_too_large');
    return true;
  });
});

test(`60 parallel webhook creations make exactly ${MAX_WEBHOOKS_PER_TENANT}; the rest are a coded 409`, async () => {
  const ops: OpsApp = await startOpsApp({ MAKAM_WEBHOOK_ALLOW_PRIVATE: 'true', MAKAM_RATE_LIMIT_PER_MINUTE: '100000' });
  try {
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        ops.api('/v1/webhooks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: `http://127.0.0.1:9/${i}` }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any })),
      ),
    );
    const byStatus: Record<number, number> = {};
    for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    console.log(`webhook creations: ${JSON.stringify(byStatus)}`);
    assert.deepEqual(byStatus, { 201: MAX_WEBHOOKS_PER_TENANT, 409: 60 - MAX_WEBHOOKS_PER_TENANT });
    for (const a of answers.filter((x) => x.status === 409)) {
      assert.equal(a.body.error.code, 'too_many_webhooks');
      assert.match(a.body.error.message, /delete one/);
    }
    const listed = (await (await ops.api('/v1/webhooks')).json()) as { data: unknown[] };
    assert.equal(listed.data.length, MAX_WEBHOOKS_PER_TENANT);
  } finally {
    await ops.close();
  }
});

test('jobs past their retention are removed: record, streams, model and their place in every list', async () => {
  const keys = redisKeys(uniquePrefix());
  const jobs = new JobStore(conn, keys);
  const blobs = new BlobStore(await mkdtemp(path.join(tmpdir(), 'makam-retention-')));
  const base = { tenant: 'acme', model: { family: 'tfidf' }, dataset: 'ds_x', validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null };
  const make = async (kind: 'finetune' | 'tune') => {
    const id = newJobId();
    const search = { space: {}, objective: { metric: 'macro_f1' as const, direction: 'maximize' as const }, trials: 1, parallelism: 1, sampler: 'tpe' as const, pruner: { type: 'none' as const }, seed: 0 };
    await jobs.create(kind === 'tune' ? queuedJob({ id, kind, ...base, search, study: null, best_trial: null, importances: null }) : queuedJob({ id, kind, ...base }));
    await jobs.transition(id, 'running', { attempts: 1 });
    return id;
  };
  const [old, recent, running] = [await make('finetune'), await make('tune'), await make('finetune')];
  for (const id of [old, recent, running]) {
    await mkdir(path.dirname(blobs.artifactPath(id)));
    await writeFile(blobs.artifactPath(id), 'model');
  }
  await jobs.transition(old, 'succeeded', { finished_at: new Date().toISOString() });
  await jobs.appendWorkerEvent(old, 1, { type: 'metrics', attempt: 1, epoch: 1, step: 1, train_loss: 1, validation_loss: 1, accuracy: 1, weighted_f1: 1, macro_f1: 1 });
  await new Promise((r) => setTimeout(r, 300));
  await jobs.transition(recent, 'failed', { finished_at: new Date().toISOString() });

  assert.equal(await sweepEndedJobs(jobs, blobs, 150), 1, 'only the job that ended more than 150 ms ago');
  assert.equal(await jobs.get(old), null);
  for (const key of [keys.job(old), keys.jobEvents(old), keys.jobMetrics(old)]) assert.equal(await conn.exists(key), 0, key);
  assert.equal(await blobs.exists(path.dirname(blobs.artifactPath(old))), false, 'its model is removed');
  const list = await jobs.list('acme', 10);
  assert.deepEqual(list.data.map((j) => j.id).sort(), [recent, running].sort());
  assert.equal(await conn.zscore(keys.tenantJobsOfKind('acme', 'finetune'), old), null);
  assert.equal(await conn.zscore(keys.jobs, old), null);
  assert.ok(await jobs.get(recent), 'a job inside its retention stays');
  assert.ok(await blobs.exists(blobs.artifactPath(running)), 'a running job is never swept');
  assert.equal(await sweepEndedJobs(jobs, blobs, 0), 1);
  assert.deepEqual((await jobs.list('acme', 10)).data.map((j) => j.id), [running]);
  assert.deepEqual(await readdir(path.join(blobs.root, 'artifacts')), [running]);
});

async function mkdir(dir: string): Promise<void> {
  await (await import('node:fs/promises')).mkdir(dir, { recursive: true });
}

// End to end: 10 labels of 500 kB (ingest caps labels; the dataset is written straight into the store
// to show the second line of defence). Before: a 20 MB finished event past gRPC's limit, the job
// failed after 3 attempts and the model was lost; webhook jobs copied a 10 MB record each.
test('a run with a huge report delivers its model; record, events and deliveries stay bounded', { timeout: 240_000 }, async () => {
  const received: Array<{ bytes: number; body: any }> = [];
  const receiver: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      received.push({ bytes: raw.length, body: JSON.parse(raw.toString('utf8')) });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
  process.env.MAKAM_WEBHOOK_ALLOW_PRIVATE = 'true'; // the stack's API inherits it: the receiver is on loopback
  let stack: Stack | undefined;
  try {
    stack = await startStack(redis.url);
    const s = stack;
    await s.withLogs(async () => {
      const hooks = [];
      for (let i = 0; i < 3; i++) {
        const r = await s.json('/v1/webhooks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: hookUrl }) });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        hooks.push(r.body.id as string);
      }
      const labels = hugeLabels(10, 500_000);
      const rows = labels.flatMap((label, i) => Array.from({ length: 6 }, (_, j) => ({ text: `kelime${i} söz${i} ${j} ${i}${j}`, label })));
      const bytes = Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const blobs = new BlobStore(s.storeDir);
      await mkdir(path.dirname(blobs.datasetPath(sha256)));
      await writeFile(blobs.datasetPath(sha256), bytes);
      const dataset = newDatasetId();
      await new DatasetStore(conn, redisKeys(s.prefix)).create({ id: dataset, object: 'dataset', tenant: 'e2e', name: null, format: 'jsonl', sha256, size_bytes: bytes.length, rows: rows.length, labels, label_counts: Object.fromEntries(labels.map((l) => [l, 6])), created_at: new Date().toISOString() });

      const submit = await s.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset, hyperparameters: { test_fraction: 0.2 } }) });
      assert.equal(submit.status, 202, JSON.stringify(submit.body));
      const job = await s.finished(submit.body.id, 180_000);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
      assert.equal(job.attempts, 1, 'succeeded on its first attempt');
      assert.equal(job.result.truncated, true);
      assert.equal(typeof job.result.accuracy, 'number');

      const model = await s.api(`/v1/jobs/${job.id}/artifacts/model`);
      assert.equal(model.status, 200);
      assert.equal(createHash('sha256').update(Buffer.from(await model.arrayBuffer())).digest('hex'), job.artifact.sha256, 'the model arrived whole');
      // The full report stays in the artifact, and the model card of huge labels streams out.
      const card = await s.api(`/v1/jobs/${job.id}/artifacts/model/files/README.md`);
      assert.equal(card.status, 200);
      const cardBytes = (await card.arrayBuffer()).byteLength;
      assert.ok(cardBytes > 8 * 1024 * 1024, `a model card of ${cardBytes} bytes`);
      const metrics = await s.api(`/v1/jobs/${job.id}/artifacts/model/files/metrics.json`);
      assert.equal(metrics.status, 200);
      assert.equal(Object.keys(((await metrics.json()) as any).per_class).length, 10);

      const keys = redisKeys(s.prefix);
      const record = await hashBytes(keys.job(job.id));
      const event = await largestEntry(keys.jobEvents(job.id));
      await eventually('three deliveries', async () => received.length >= 3, 30_000);
      const deliveryKeys = hooks.map((h) => `${s.prefix}-q:${WEBHOOK_QUEUE}:${received[0]!.body.id}-${h}`);
      const deliveryData = Math.max(...(await Promise.all(deliveryKeys.map(async (k) => Buffer.byteLength((await conn.hget(k, 'data')) ?? '')))));
      const deliveryJob = Math.max(...(await Promise.all(deliveryKeys.map(hashBytes))));
      const body = Math.max(...received.map((r) => r.bytes));
      console.log(
        `e2e (10 labels of 500 kB): record ${record} bytes (limit ${MAX_JOB_RECORD_BYTES}), largest event ${event} (limit ${MAX_JOB_EVENT_BYTES}), ` +
          `delivery job ${deliveryJob} (data ${deliveryData}, limit ${MAX_DELIVERY_JOB_DATA_BYTES}), webhook body ${body} (limit ${MAX_WEBHOOK_BODY_BYTES}), model card ${cardBytes}`,
      );
      assert.ok(deliveryData > 0, 'the delivery jobs were found');
      assert.ok(record <= MAX_JOB_RECORD_BYTES, `record ${record}`);
      assert.ok(event <= MAX_JOB_EVENT_BYTES, `event ${event}`);
      assert.ok(deliveryData <= MAX_DELIVERY_JOB_DATA_BYTES, `delivery job data ${deliveryData}`);
      assert.ok(body <= MAX_WEBHOOK_BODY_BYTES, `webhook body ${body}`);
      assert.equal(received[0]!.body.data.job.id, job.id);
      assert.equal(received[0]!.body.data.job.status, 'succeeded');

      // The most ingest allows: 200 labels of 100 two-byte characters, uploaded through the API.
      const many = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(3, '0')}${'ş'.repeat(97)}`);
      const jsonl = many.flatMap((label, i) => Array.from({ length: 5 }, (_, j) => JSON.stringify({ text: `kelime${i} söz${i} ${j}`, label }))).join('\n');
      const upload = await s.json('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: jsonl });
      assert.equal(upload.status, 201, JSON.stringify(upload.body));
      const second = await s.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { test_fraction: 0.2 } }) });
      assert.equal(second.status, 202, JSON.stringify(second.body));
      const job2 = await s.finished(second.body.id, 180_000);
      assert.equal(job2.status, 'succeeded', JSON.stringify(job2.error));
      const record2 = await hashBytes(keys.job(job2.id));
      const event2 = await largestEntry(keys.jobEvents(job2.id));
      await eventually('three more deliveries', async () => received.length >= 6, 30_000);
      const body2 = Math.max(...received.slice(3).map((r) => r.bytes));
      console.log(`e2e (200 labels of 100 characters, through ingest): record ${record2} bytes, largest event ${event2}, webhook body ${body2}`);
      assert.ok(record2 <= MAX_JOB_RECORD_BYTES, `record ${record2}`);
      assert.ok(event2 <= MAX_JOB_EVENT_BYTES, `event ${event2}`);
      assert.ok(body2 <= MAX_WEBHOOK_BODY_BYTES, `webhook body ${body2}`);

      // A run that fails is cleaned from the worker too (only successes were: a failed run's files stayed).
      const one = Buffer.from(Array.from({ length: 10 }, (_, j) => JSON.stringify({ text: `tek ${j}`, label: 'yalnız' })).join('\n') + '\n');
      const oneSha = createHash('sha256').update(one).digest('hex');
      await writeFile(blobs.datasetPath(oneSha), one);
      const oneId = newDatasetId();
      await new DatasetStore(conn, redisKeys(s.prefix)).create({ id: oneId, object: 'dataset', tenant: 'e2e', name: null, format: 'jsonl', sha256: oneSha, size_bytes: one.length, rows: 10, labels: ['yalnız', 'öteki'], label_counts: { yalnız: 10, öteki: 0 }, created_at: new Date().toISOString() });
      const third = await s.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: oneId, hyperparameters: {} }) });
      assert.equal(third.status, 202, JSON.stringify(third.body));
      const failed = await s.finished(third.body.id, 120_000);
      assert.equal(failed.status, 'failed');
      const runs = path.join(s.workerStateDir, 'runs');
      await eventually('the failed run removed from the worker', async () => !(await readdir(runs).catch(() => [] as string[])).includes(failed.id), 10_000);
      assert.deepEqual(await readdir(runs).catch(() => []), [], 'no run left on the worker');
    });
  } finally {
    delete process.env.MAKAM_WEBHOOK_ALLOW_PRIVATE;
    await stack?.stop();
    receiver.close();
  }
});
