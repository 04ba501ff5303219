// Where a job's time goes before training, and the API beside its floor, in one run (issue 12):
//   node bench/orchestration.ts [--n 600] [--concurrency 16] [--rounds 2] [--json out.json]
// Starts what it needs: redis-server on a free port, the API, a dispatcher and a Python worker
// (test/support/stack.ts, as the end-to-end tests do), and the floor (bench/orchestration-floor.ts:
// a minimal Fastify route doing queue.add / one HGETALL on the same Redis, in its own process).
// Each HTTP row runs makam and its floor back to back, `rounds` times with the order swapped each
// round, so the ratio compares the two under the same load on the machine. The latency rows read
// the job's event log: `status: running` and the worker's `started` event (stream ids are Redis
// server time), which both families emit right before their first training step
// (training/trainer.py, training/families/tfidf.py), so "first step" below is that event.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import { freePort } from '../test/support/ports.ts';
import { startLocalRedis } from '../test/support/redis.ts';
import { ROOT, startStack, type Stack } from '../test/support/stack.ts';
import { closeClient, send } from './support.ts';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '600' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    'latency-runs': { type: 'string', default: '5' },
    'job-timeout': { type: 'string', default: '300' },
    'http-only': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const N = Number(args.n);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const LATENCY_RUNS = Number(args['latency-runs']);
const JOB_TIMEOUT_MS = Number(args['job-timeout']) * 1000;

// --- processes ---------------------------------------------------------------------------------

async function startFloor(redisUrl: string, prefix: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['bench/orchestration-floor.ts'], {
    cwd: ROOT,
    env: { ...process.env, FLOOR_REDIS_URL: redisUrl, FLOOR_PORT: String(port), FLOOR_QUEUE: 'floor-train', FLOOR_QUEUE_PREFIX: `${prefix}-floor`, FLOOR_RECORD_PREFIX: `${prefix}:job:` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the floor exited (${code})`)));
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('floor listening')) resolve();
    });
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

// --- load: a fixed number of clients, each sending its next request when the last is answered ------

interface Target {
  url: (i: number) => string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  status: number;
}

/** Sends n requests from `concurrency` clients; the seconds it took. Any other status fails the bench. */
async function load(target: Target, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const res = await send(target.url(i), target.method, target.headers, target.body);
        if (res.status !== target.status) throw new Error(`${target.method} ${target.url(i)} answered ${res.status}, not ${target.status}: ${res.body.slice(0, 300)}`);
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

interface HttpRow {
  path: string;
  makam: number[];
  floor: number[];
}

/** makam and floor back to back, rounds times, the order swapped each round; requests a second of each. */
async function compare(path: string, makam: Target, floor: Target, concurrency: number): Promise<HttpRow> {
  // Warm-up: JIT, connections, Redis scripts loaded.
  await load(makam, Math.min(100, N), concurrency);
  await load(floor, Math.min(100, N), concurrency);
  console.error(`  ${path}: warmed up`);
  const row: HttpRow = { path, makam: [], floor: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (['makam', 'floor'] as const) : (['floor', 'makam'] as const);
    for (const which of order) {
      const seconds = await load(which === 'makam' ? makam : floor, N, concurrency);
      row[which].push(N / seconds);
      console.error(`  ${path}: ${which} ${(N / seconds).toFixed(0)} req/s`);
    }
  }
  return row;
}

// --- latency -----------------------------------------------------------------------------------

interface EventEntry {
  id: string;
  created_at: string;
  type: string;
  data: Record<string, unknown>;
}

const streamMs = (id: string): number => Number(id.split('-')[0]);

async function eventsOf(stack: Stack, jobId: string): Promise<EventEntry[]> {
  const out: EventEntry[] = [];
  let after: string | null = null;
  for (;;) {
    const { status, body }: { status: number; body: any } = await stack.json(`/v1/jobs/${jobId}/events?limit=1000${after ? `&after=${after}` : ''}`);
    if (status !== 200) throw new Error(`events of ${jobId}: ${status} ${JSON.stringify(body)}`);
    out.push(...body.data);
    // next_cursor is a tailing cursor (never null): a short page is the end.
    if (body.data.length < 1000) return out;
    after = body.next_cursor;
  }
}

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'pruned'];

/** Polls the job until it ends (stack.finished, with a deadline on each request too). */
async function finished(stack: Stack, jobId: string): Promise<any> {
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const { status, body } = await stack.json(`/v1/jobs/${jobId}`, { signal: AbortSignal.timeout(30_000) });
    if (status !== 200) throw new Error(`GET /v1/jobs/${jobId} answered ${status}: ${JSON.stringify(body)}`);
    if (TERMINAL.includes(body.status)) return body;
    last = body.status;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${last} after ${JOB_TIMEOUT_MS / 1000} s`);
    await sleep(50);
  }
}

interface RunTiming {
  submitToRunning: number;
  runningToStarted: number;
  submitToStarted: number;
}

/** Submits a job and waits for it; times from the client's submit to its running and started events. */
async function timedRun(stack: Stack, body: unknown): Promise<RunTiming> {
  const submitted = Date.now();
  const res = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.body)}`);
  const job = await finished(stack, res.body.id);
  if (job.status !== 'succeeded') throw new Error(`job ${job.id} ${job.status}: ${JSON.stringify(job.error)}`);
  const events = await eventsOf(stack, job.id);
  const running = events.find((e) => e.type === 'status' && e.data.status === 'running');
  const started = events.find((e) => e.type === 'started');
  if (!running || !started) throw new Error(`job ${job.id} has no running or started event`);
  return { submitToRunning: streamMs(running.id) - submitted, runningToStarted: streamMs(started.id) - streamMs(running.id), submitToStarted: streamMs(started.id) - submitted };
}

/** Raw BullMQ: add -> the processor starts, on the same Redis, one job at a time. */
async function bullmqFloor(connection: ConnectionOptions, prefix: string, samples: number): Promise<number[]> {
  const name = `floor-latency-${Math.random().toString(36).slice(2, 8)}`;
  const queue = new Queue(name, { connection, prefix });
  let resolveStart: ((t: number) => void) | null = null;
  const worker = new Worker(name, async () => resolveStart?.(performance.now()), { connection, prefix });
  await worker.waitUntilReady();
  const out: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const started = new Promise<number>((r) => (resolveStart = r));
      const t0 = performance.now();
      await queue.add('train', { jobId: String(i) }, { removeOnComplete: true });
      out.push((await started) - t0);
    }
  } finally {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
  return out;
}

/** A small tune job's trials: each trial's record created (queued) -> its started event. */
async function trialOverheads(stack: Stack, dataset: string, trials: number): Promise<number[]> {
  const res = await stack.json('/v1/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'tune',
      model: { family: 'tfidf' },
      dataset,
      hyperparameters: { validation_fraction: 0.2 },
      search: { space: { C: { type: 'float', low: 0.1, high: 10, log: true } }, objective: { metric: 'macro_f1', direction: 'maximize' }, trials, parallelism: 1, sampler: 'random', pruner: 'none', seed: 0 },
    }),
  });
  if (res.status !== 202) throw new Error(`tune submit answered ${res.status}: ${JSON.stringify(res.body)}`);
  const tune = await finished(stack, res.body.id);
  if (tune.status !== 'succeeded') throw new Error(`tune job ${tune.id} ${tune.status}: ${JSON.stringify(tune.error)}`);
  const { body } = await stack.json(`/v1/jobs/${tune.id}/trials`);
  const out: number[] = [];
  for (const t of body.data) {
    const { body: record } = await stack.json(`/v1/jobs/${t.job_id}`);
    const started = (await eventsOf(stack, t.job_id)).find((e) => e.type === 'started');
    if (started) out.push(streamMs(started.id) - Date.parse(record.created_at));
  }
  return out;
}

// --- figures -----------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const range = (xs: number[], digits = 0): string => {
  const lo = Math.min(...xs).toFixed(digits);
  const hi = Math.max(...xs).toFixed(digits);
  return lo === hi ? lo : `${lo}–${hi}`;
};
const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 2 : 0)} ms`);
const msRow = (xs: number[]): string => `p50 ${ms(median(xs))} (${xs.length}: ${ms(Math.min(...xs))}–${ms(Math.max(...xs))})`;

// --- the run -----------------------------------------------------------------------------------

// Limits that would refuse the bench's own load; the API reads them at start (the stack passes
// this process's environment on).
process.env.MAKAM_RATE_LIMIT_PER_MINUTE = '10000000';
process.env.MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE = '10000000';
process.env.MAKAM_TENANT_MAX_ACTIVE_JOBS = '1000000';

const started = Date.now();
const footer = () => `\n${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${((Date.now() - started) / 1000).toFixed(0)} s in all`;
const redisServer = await startLocalRedis();
let stack: Stack | null = null;
let floor: { url: string; child: ChildProcess } | null = null;
// Options, not a connection: BullMQ then opens its own and closes them with the queue or worker.
const { hostname, port } = new URL(redisServer.url);
const conn: ConnectionOptions = { host: hostname, port: Number(port), maxRetriesPerRequest: null };
let stopping: Promise<void> | null = null;
const shutdown = (): Promise<void> =>
  (stopping ??= (async () => {
    closeClient();
    if (floor) await stopChild(floor.child);
    if (stack) await stack.stop();
    await redisServer.stop();
  })());
// Interrupted, it still stops what it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown().finally(() => process.exit(130)));
try {
  stack = await startStack(redisServer.url, { workerEnv: { MAKAM_WORKER_WARM: '1' } });
  floor = await startFloor(redisServer.url, stack.prefix);
  const upload = await stack.uploadSample();
  if (upload.status !== 201) throw new Error(`upload answered ${upload.status}: ${JSON.stringify(upload.body)}`);
  const dataset: string = upload.body.id;
  const tfidfJob = { kind: 'finetune', model: { family: 'tfidf' }, dataset, hyperparameters: { validation_fraction: 0.2 } };
  const encoderJob = {
    kind: 'finetune',
    model: { family: 'encoder', config: { model_type: 'bert', hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64 }, tokenizer: { vocab_size: 500, min_frequency: 1 } },
    dataset,
    hyperparameters: { epochs: 1, validation_fraction: 0.2, max_length: 64 },
  };
  const auth = { authorization: `Bearer ${stack.apiKey}` };
  console.error(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s; HTTP rows: n ${N}, ${CONCURRENCY} clients, ${ROUNDS} rounds`);

  // HTTP rows. The class's train queue is paused so the dispatcher does not train the jobs the
  // load submits (the floor's queue is paused too); they are dropped afterwards.
  const trainQueue = new Queue(`train-cpu`, { connection: conn, prefix: `${stack.prefix}-q` });
  await trainQueue.pause();
  const json = { 'content-type': 'application/json' };
  const body = JSON.stringify(tfidfJob);
  const makamPost: Target = { url: () => `${stack!.apiUrl}/v1/jobs`, method: 'POST', headers: { ...auth, ...json }, body, status: 202 };
  const floorPost: Target = { url: () => `${floor!.url}/jobs`, method: 'POST', headers: json, body, status: 202 };
  const rows: HttpRow[] = [];
  rows.push(await compare('`POST /v1/jobs` (tfidf job), sequential', makamPost, floorPost, 1));
  rows.push(await compare(`\`POST /v1/jobs\`, ${CONCURRENCY} concurrent`, makamPost, floorPost, CONCURRENCY));
  const one = JSON.parse((await send(makamPost.url(0), 'POST', makamPost.headers, body)).body).id as string;
  rows.push(
    await compare(
      `\`GET /v1/jobs/:id\`, ${CONCURRENCY} concurrent`,
      { url: () => `${stack!.apiUrl}/v1/jobs/${one}`, method: 'GET', headers: auth, status: 200 },
      { url: () => `${floor!.url}/jobs/${one}`, method: 'GET', headers: {}, status: 200 },
      CONCURRENCY,
    ),
  );
  await trainQueue.drain();
  await trainQueue.resume();
  await trainQueue.close();
  const lines: string[] = ['| path | makam | floor, same run | ratio (makam / floor) |', '| --- | --- | --- | --- |'];
  for (const r of rows) {
    const ratios = r.makam.map((m, i) => m / r.floor[i]!);
    lines.push(`| ${r.path} | ${range(r.makam)} req/s | minimal route: ${range(r.floor)} req/s | ${range(ratios, 2)} |`);
  }
  if (args['http-only']) {
    console.log(lines.join('\n'));
    console.log(footer());
    await shutdown();
    process.exit(0);
  }

  // Latency rows, a makam run and a few raw BullMQ samples in turn. A fresh tenant's key, so the
  // jobs the load left queued count against no quota here.
  const tfidf: RunTiming[] = [];
  const bull: number[] = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    bull.push(...(await bullmqFloor(conn, `${stack.prefix}-floor`, 6)));
    tfidf.push(await timedRun(stack, tfidfJob));
    console.error(`  tfidf run ${i + 1}: ${JSON.stringify(tfidf.at(-1))}; raw BullMQ ${bull.slice(-6).map((x) => x.toFixed(2)).join(' ')} ms`);
  }
  const encoder: RunTiming[] = [];
  for (let i = 0; i < Math.max(1, Math.ceil(LATENCY_RUNS / 2)); i++) {
    encoder.push(await timedRun(stack, encoderJob));
    console.error(`  encoder run ${i + 1}: ${JSON.stringify(encoder.at(-1))}`);
  }
  const trials = await trialOverheads(stack, dataset, 3);
  console.error(`  tune trials: ${trials.join(' ')} ms`);

  // The rest of the table.
  lines.push(`| submit → \`running\` (tfidf) | ${msRow(tfidf.map((t) => t.submitToRunning))} | raw BullMQ add → processor start: ${msRow(bull)} | ${(median(tfidf.map((t) => t.submitToRunning)) / median(bull)).toFixed(0)}× slower |`);
  lines.push(`| \`running\` → the worker's \`started\` event (tfidf) | ${msRow(tfidf.map((t) => t.runningToStarted))} | — | — |`);
  lines.push(`| submit → first training step, tfidf | ${msRow(tfidf.map((t) => t.submitToStarted))} | target ≤ 300 ms | — |`);
  lines.push(`| submit → first training step, config-built encoder (bert, 1 × 32) | ${msRow(encoder.map((t) => t.submitToStarted))} | target ≤ 1.5 s | — |`);
  lines.push(`| tune trial (tfidf): trial queued → first step | ${trials.length ? msRow(trials) : 'no trial started'} | target ≤ 1 s | — |`);
  const table = lines.join('\n');
  console.log(table);
  console.log(footer());
  if (args.json) await writeFile(args.json, JSON.stringify({ rows, tfidf, encoder, bull, trials }, null, 2));
} catch (err) {
  if (stack) console.error(stack.logs());
  throw err;
} finally {
  await shutdown();
}
process.exit(0); // nothing should be left open, but a stray handle must not keep the bench from ending
