// Redis Sentinel: the primary is SIGKILLed while jobs train; the sentinels promote the replica, and
// the API, the dispatcher and the workers' jobs carry on through REDIS_SENTINELS. Every job
// finishes exactly once with its whole metric series: nothing lost, nothing trained twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSentinelRedis, type SentinelRedis } from '../support/sentinel.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';
import { tally } from './tally.ts';

let dir: string;
let redis: SentinelRedis;
let stack: Stack;
// Every `run started` line of every worker (the worker logs one per run it creates: StartRun for
// a job id it already has answers "exists" and starts nothing).
const runsStarted = new Map<string, number>();

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-sentinel-'));
  redis = await startSentinelRedis(dir);
  stack = await startStack(redis.settings, { workers: 2 });
  for (const proc of stack.procs.filter((p) => p.name.startsWith('worker'))) {
    const count = (b: Buffer) => {
      for (const m of b.toString().matchAll(/run_id=(\S+) run started:/g)) runsStarted.set(m[1]!, (runsStarted.get(m[1]!) ?? 0) + 1);
    };
    proc.child.stdout!.on('data', count);
    proc.child.stderr!.on('data', count);
  }
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const post = (body: unknown) => stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('the primary dies mid-training; the replica takes over and every job finishes once, metrics whole', { timeout: 600_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const encoder = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  encoder.dataset = upload.body.id;
  Object.assign(encoder.hyperparameters, { epochs: 3, batch_size: 16, max_length: 32 });
  const tfidf = { kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { validation_fraction: 0.2 } };
  const jobs: { id: string; epochs: number | null }[] = [];
  for (const body of [encoder, encoder, tfidf, tfidf]) {
    const res = await post(body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    jobs.push({ id: res.body.id, epochs: body === encoder ? 3 : null });
    tally.submitted++;
  }
  const first = jobs[0]!.id;
  await eventually('an epoch of the first job', async () => (await stack.json(`/v1/jobs/${first}/metrics`)).body.data?.length >= 1, 300_000, 100);

  const t0 = Date.now();
  const before = await redis.primary();
  const oldPort = Number(before.split(':')[1]);
  await redis.kill(oldPort);
  tally.faults++;
  const now = await redis.failedOver(oldPort, 30_000);
  assert.notEqual(now, before);
  // The dead node comes back (as a supervisor restarts it) and the sentinels make it a replica:
  // with min-replicas-to-write 1 the new primary takes writes again once it has one.
  const promotedMs = Date.now() - t0;
  await redis.restart(oldPort);

  // A job submitted after the failover runs too.
  const late = await eventually('the API to take a job through the new primary', async () => {
    const res = await post(tfidf);
    return res.status === 202 ? res : null;
  }, 60_000, 250);
  console.log(`failover: replica promoted ${promotedMs} ms after the kill; a job accepted again after ${Date.now() - t0} ms`);
  jobs.push({ id: late.body.id, epochs: null });
  tally.submitted++;

  for (const { id, epochs } of jobs) {
    const job = await stack.finished(id, 420_000);
    if (job.status === 'succeeded') tally.finished++;
    else tally.lost++;
    assert.equal(job.status, 'succeeded', `${id}: ${JSON.stringify(job.error)}`);
    const { body: events } = await stack.json(`/v1/jobs/${id}/events?limit=1000`);
    assert.equal(events.data.filter((e: { type: string }) => e.type === 'started').length, 1, `${id}: one 'started' event`);
    assert.equal(runsStarted.get(id), 1, `${id}: one run created on the workers`);
    const { body: metrics } = await stack.json(`/v1/jobs/${id}/metrics`);
    const seen = metrics.data.map((p: { epoch: number }) => p.epoch);
    if (epochs) assert.deepEqual(seen, Array.from({ length: epochs }, (_, i) => i + 1), `${id}: every epoch once, none missing`);
    else assert.ok(seen.length >= 1 && new Set(seen).size === seen.length, `${id}: metrics stored once (${seen})`);
  }
  assert.equal([...runsStarted.values()].reduce((a, b) => a + b, 0), jobs.length, 'no run for a job that does not exist');
}));
