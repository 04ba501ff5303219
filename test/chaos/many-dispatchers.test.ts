// Four dispatchers of one class, each driving two of eight real Python workers (warm: a tfidf run
// takes a fraction of a second), push MAKAM_SCALE_JOBS (1,000) jobs through; one dispatcher is
// SIGKILLed and restarted halfway. Every job succeeds, is announced finished once, and was trained
// exactly once: one `started` event, one run created on exactly one worker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freemem, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { eventually, startStack, type Stack } from '../support/stack.ts';
import { tally } from './tally.ts';

const JOBS = Number(process.env.MAKAM_SCALE_JOBS ?? 1000);
const WORKERS = 8;
const DISPATCHERS = 4;

let redis: TestRedis;
let stack: Stack;
let conn: Redis;
// job id -> the workers that logged `run started` for it (one line per run created; a StartRun
// for a run the worker already has creates nothing).
const runs = new Map<string, string[]>();

before(async () => {
  redis = await startRedis();
  const freeBefore = freemem();
  stack = await startStack(redis.url, {
    workers: WORKERS,
    dispatchers: DISPATCHERS,
    workerEnv: { MAKAM_WORKER_WARM: '1' },
    // A killed dispatcher's jobs are noticed within two lock periods.
    dispatcherEnv: { MAKAM_LOCK_MS: '3000' },
    apiEnv: { MAKAM_TENANT_MAX_ACTIVE_JOBS: String(JOBS + 10), MAKAM_RATE_LIMIT_PER_MINUTE: '1000000', MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '1000000' },
  });
  console.log(`memory: ${((freeBefore - freemem()) / 2 ** 30).toFixed(1)} GiB taken by the stack (${WORKERS} warm workers, ${DISPATCHERS} dispatchers, API) of ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  for (const proc of stack.procs.filter((p) => p.name.startsWith('worker'))) {
    const count = (b: Buffer) => {
      for (const m of b.toString().matchAll(/run_id=(\S+) run started:/g)) runs.set(m[1]!, [...(runs.get(m[1]!) ?? []), proc.name]);
    };
    proc.child.stdout!.on('data', count);
    proc.child.stderr!.on('data', count);
  }
  conn = new Redis(redis.url);
});
after(async () => {
  conn?.disconnect();
  await stack?.stop();
  await redis?.stop();
});

/** job id -> how many times it was announced finished (the stream webhooks follow). */
async function finishedAnnouncements(): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (const [, fields] of await conn.xrange(`${stack.prefix}:jobs:finished`, '-', '+')) {
    const id = fields[fields.indexOf('job') + 1]!;
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

test(`${JOBS} jobs through ${DISPATCHERS} dispatchers and ${WORKERS} workers, a dispatcher killed halfway: each trained once`, { timeout: 900_000 }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const body = JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { validation_fraction: 0.2 } });
  const t0 = Date.now();
  const ids: string[] = [];
  await pool(Array.from({ length: JOBS }, (_, i) => i), 8, async (i) => {
    // A kept-alive socket the loaded API closes as it is reused fails the fetch, and an API starved
    // of CPU by the eight trainings sheds load (503 overloaded, Retry-After), as a client is told to
    // retry: the same Idempotency-Key makes the retry answer with the job the first try may have created.
    const shed = (res: { status: number; body: any }) => (res.status === 503 && res.body?.error?.code === 'overloaded' ? null : res);
    const res = await eventually(`job ${i} submitted`, () => stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `scale-${i}` }, body }).then(shed, () => null), 60_000, 200);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    ids.push(res.body.id);
    tally.submitted++;
  });
  const submittedS = (Date.now() - t0) / 1000;

  // Halfway through, the second dispatcher dies mid-job and its supervisor starts it again.
  await eventually('half the jobs to finish', async () => (await finishedAnnouncements()).size >= JOBS / 2, 600_000, 250);
  // dispatcher2 drives worker2 and worker6 (stack.ts: dispatcher d drives workers d, d + 4).
  const inFlight = await eventually('a run of dispatcher2 in progress', async () => {
    const done = await finishedAnnouncements();
    const n = [...runs.entries()].filter(([id, on]) => ['worker2', 'worker6'].includes(on.at(-1)!) && !done.has(id)).length;
    return n || null;
  }, 60_000, 10);
  await stack.kill('dispatcher2', 'SIGKILL');
  tally.faults++;
  stack.startDispatcher('dispatcher2');

  const finished = await eventually('every job to be announced finished', async () => {
    const seen = await finishedAnnouncements();
    return seen.size >= JOBS ? seen : null;
  }, 600_000, 500);
  const elapsedS = (Date.now() - t0) / 1000;
  console.log(`${JOBS} jobs: submitted in ${submittedS.toFixed(1)} s, all finished after ${elapsedS.toFixed(1)} s (${(JOBS / elapsedS).toFixed(1)} jobs/s with ${DISPATCHERS} dispatchers, ${WORKERS} workers; dispatcher2 killed with ${inFlight} of its runs in progress, and restarted)`);

  assert.deepEqual([...finished.values()].filter((n) => n !== 1), [], 'every job announced finished exactly once');
  const problems: string[] = [];
  await pool(ids, 8, async (id) => {
    const { body: job } = await stack.json(`/v1/jobs/${id}`);
    if (job.status === 'succeeded') tally.finished++;
    else tally.lost++;
    if (job.status !== 'succeeded') problems.push(`${id}: ${job.status} ${JSON.stringify(job.error)}`);
    const { body: events } = await stack.json(`/v1/jobs/${id}/events?limit=1000`);
    const started = events.data.filter((e: { type: string }) => e.type === 'started').length;
    if (started !== 1) problems.push(`${id}: ${started} 'started' events`);
    const on = runs.get(id) ?? [];
    if (on.length !== 1) problems.push(`${id}: runs created on [${on.join(', ')}]`);
  });
  assert.deepEqual(problems, []);
  assert.equal(runs.size, JOBS, 'no run for a job that does not exist');
}));
