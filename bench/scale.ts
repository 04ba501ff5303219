// Throughput with 1, 2 and 4 dispatchers of one class over the same 8 warm Python workers (issue 14):
//   node bench/scale.ts [--n 300] [--workers 8] [--dispatchers 1,2,4] [--json out.json]
// One stack (test/support/stack.ts: redis-server, the API, 8 workers with MAKAM_WORKER_WARM=1); for
// each count, that many dispatchers each drive their share of the workers (dispatcher d the
// workers d, d + count, ...), N tfidf jobs are submitted 8 at a time, and the figure is jobs
// finished per second from the first submit to the last job's end (the jobs:finished stream). Beside
// it, the floor measured in the same run: raw BullMQ with as many Worker processes as makam has
// workers, each with a processor that does nothing, over the same N jobs with makam's job options.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { trainJobOptions } from '../services/shared/src/queues.ts';
import { startLocalRedis } from '../test/support/redis.ts';
import { ROOT, startStack, type Stack } from '../test/support/stack.ts';
import { closeClient, send } from './support.ts';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '300' },
    workers: { type: 'string', default: '8' },
    dispatchers: { type: 'string', default: '1,2,4' },
    json: { type: 'string' },
    // internal: one raw BullMQ Worker process of the floor
    'floor-worker': { type: 'string' },
  },
});

if (args['floor-worker']) {
  // A Worker whose processor does nothing; exits on SIGTERM after closing.
  const [url, queue, prefix] = args['floor-worker'].split(' ');
  const worker = new Worker(queue!, async () => 'done', { connection: new Redis(url!, { maxRetriesPerRequest: null }), prefix, concurrency: 1 });
  await worker.waitUntilReady();
  console.log('floor worker ready');
  process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
} else {
  await main();
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function finishedCount(conn: Redis, key: string): Promise<number> {
  return conn.xlen(key);
}

/** Seconds for N jobs through `count` dispatchers: first submit to the N-th finished announcement. */
async function makamRound(stack: Stack, conn: Redis, body: string, n: number, count: number): Promise<number> {
  const names = Array.from({ length: count }, (_, d) => `scale${count}-${d}`);
  for (const [d, name] of names.entries()) {
    stack.startDispatcher(name, { MAKAM_WORKERS: stack.workerAddresses.filter((_, i) => i % count === d).join(',') });
  }
  await sleep(3000); // the dispatchers connect and take their first job from a queue that is empty
  const key = `${stack.prefix}:jobs:finished`;
  const before = await finishedCount(conn, key);
  const t0 = performance.now();
  let next = 0;
  const headers = { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' };
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next++ < n) {
      const res = await send(`${stack.apiUrl}/v1/jobs`, 'POST', headers, body);
      if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${res.body}`);
    }
  }));
  while ((await finishedCount(conn, key)) - before < n) await sleep(100);
  const s = (performance.now() - t0) / 1000;
  for (const name of names) await stack.stopProc(name);
  return s;
}

/** Seconds for N jobs through raw BullMQ with `workers` no-op Worker processes. */
async function floorRound(url: string, prefix: string, n: number, workers: number): Promise<number> {
  const name = `floor-${Date.now()}`;
  const children: ChildProcess[] = [];
  for (let i = 0; i < workers; i++) {
    const child = spawn(process.execPath, ['bench/scale.ts', '--floor-worker', `${url} ${name} ${prefix}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`a floor worker exited (${code})`)));
      child.stdout!.on('data', (b: Buffer) => b.toString().includes('floor worker ready') && resolve());
    });
  }
  const queue = new Queue(name, { connection: { url, maxRetriesPerRequest: null }, prefix });
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < n) {
      const id = `job-${next++}`;
      await queue.add('train', { jobId: id }, trainJobOptions(id, 3));
    }
  }));
  while ((await queue.getJobCountByTypes('completed')) < n) await sleep(20);
  const s = (performance.now() - t0) / 1000;
  for (const child of children) {
    child.removeAllListeners('exit');
    await stopChild(child);
  }
  await queue.obliterate({ force: true });
  await queue.close();
  return s;
}

async function main(): Promise<void> {
  const N = Number(args.n);
  const WORKERS = Number(args.workers);
  const COUNTS = args.dispatchers.split(',').map(Number);
  process.env.MAKAM_RATE_LIMIT_PER_MINUTE = '10000000';
  process.env.MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE = '10000000';
  process.env.MAKAM_TENANT_MAX_ACTIVE_JOBS = '1000000';
  const started = Date.now();
  const redisServer = await startLocalRedis();
  let stack: Stack | null = null;
  const conn = new Redis(redisServer.url);
  try {
    stack = await startStack(redisServer.url, { workers: WORKERS, dispatchers: 0, workerEnv: { MAKAM_WORKER_WARM: '1' } });
    const upload = await stack.uploadSample();
    const body = JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { validation_fraction: 0.2 } });
    // One untimed round: the warm processes' first runs import what the later ones reuse.
    await makamRound(stack, conn, body, WORKERS * 2, Math.max(...COUNTS));
    const rows: { dispatchers: number; makam: number; floor: number }[] = [];
    for (const count of COUNTS) {
      const makam = N / (await makamRound(stack, conn, body, N, count));
      const floor = N / (await floorRound(redisServer.url, `${stack.prefix}-floor`, N, WORKERS));
      rows.push({ dispatchers: count, makam, floor });
      console.error(`  ${count} dispatcher(s): makam ${makam.toFixed(1)} jobs/s; raw BullMQ, ${WORKERS} no-op workers: ${floor.toFixed(0)} jobs/s`);
    }
    const lines = [
      `| dispatchers (${WORKERS} warm workers, tfidf, ${N} jobs) | makam jobs/s | raw BullMQ, ${WORKERS} no-op Worker processes, jobs/s | makam / floor |`,
      '| --- | --- | --- | --- |',
      ...rows.map((r) => `| ${r.dispatchers} | ${r.makam.toFixed(1)} | ${r.floor.toFixed(0)} | ${(r.makam / r.floor).toFixed(3)} |`),
      '',
      `${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
    ];
    console.log(lines.join('\n'));
    if (args.json) await writeFile(args.json, JSON.stringify(rows, null, 2));
  } finally {
    closeClient();
    conn.disconnect();
    if (stack) await stack.stop();
    await redisServer.stop();
  }
}
