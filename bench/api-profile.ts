// Where an API request's time goes (issue 12): the API alone (no dispatcher, no worker) on its own
// redis-server, under a fixed load of POST /v1/jobs (tfidf) and GET /v1/jobs/:id, with
//   - Redis commands per request, from INFO commandstats before and after each phase;
//   - CPU time per request of the API process and of the floor (bench/orchestration-floor.ts) under
//     the same load, from /proc: a ratio that the other load on a shared machine disturbs far less
//     than requests a second;
//   - a V8 CPU profile of the API (node --cpu-prof), summarised by self time over each phase alone
//     (start-up and the other phase left out) and by where the code lives (package, node, makam).
//   node bench/api-profile.ts [--n 2000] [--concurrency 16] [--top 25] [--keep-profile DIR] [--no-profile]
// The profiler costs the API CPU of its own (15-30% more µs a request, 2026-11-30) and the floor
// runs without it: --no-profile runs the API without it too, for CPU figures to set beside the floor's.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from '../test/support/ports.ts';
import { createKey } from '../test/support/keys.ts';
import { startLocalRedis } from '../test/support/redis.ts';
import { ROOT } from '../test/support/stack.ts';
import { closeClient, send } from './support.ts';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16' },
    top: { type: 'string', default: '25' },
    'keep-profile': { type: 'string' },
    only: { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
  },
});
const N = Number(args.n);
const CONCURRENCY = Number(args.concurrency);

async function load(n: number, fn: () => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < n) await fn();
  }));
  return (performance.now() - t0) / 1000;
}

async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  // The reads Redis made from its clients' sockets: about one per write of the API (a pipeline or
  // an auto-pipelined batch is one), whatever the commands in it.
  const reads = /total_reads_processed:(\d+)/.exec(await redis.info('stats'));
  if (reads) out.set('~reads', Number(reads[1]));
  return out;
}

function perRequest(before: Map<string, number>, after: Map<string, number>, n: number): string {
  const rows: string[] = [];
  let total = 0;
  for (const [cmd, calls] of after) {
    const d = calls - (before.get(cmd) ?? 0);
    if (d <= 0 || cmd === 'info' || cmd.startsWith('~')) continue;
    total += d;
    rows.push(`${cmd} ${(d / n).toFixed(2)}`);
  }
  const reads = (after.get('~reads') ?? 0) - (before.get('~reads') ?? 0);
  return `${(total / n).toFixed(2)} commands/request in ${(reads / n).toFixed(2)} socket reads of Redis/request: ${rows.sort().join(', ')}`;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package under node_modules, node's own, makam's, or V8's. */
function origin(url: string): string {
  if (!url) return '(v8/native)';
  if (url.startsWith('node:')) return 'node';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  return url.includes('/services/') ? 'makam' : url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
}

/**
 * Self time of the samples taken within `window` (µs on the monotonic clock, which V8's profile
 * timestamps and process.hrtime share), so start-up and the other phase are left out: the top
 * frames, then the same time by where the code lives.
 */
function summarise(profile: CpuProfile, top: number, window: [number, number]): string {
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (f: ProfileNode['callFrame']): string => `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '')}:${f.lineNumber + 1}` : ''}`;
  let total = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (t < window[0] || t > window[1]) return;
    const dt = profile.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
    const key = keyOf(f);
    self.set(key, (self.get(key) ?? 0) + dt);
    // Inclusive time: each frame on the sample's stack once (recursion counted once).
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const k = keyOf(byId.get(n)!.callFrame);
      if (!seen.has(k)) inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
      seen.add(k);
    }
    if (f.functionName !== '(idle)') byOrigin.set(origin(f.url), (byOrigin.get(origin(f.url)) ?? 0) + dt);
    total += dt;
  });
  const idle = self.get('(idle) ') ?? 0;
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const lines = [...self].filter(([k]) => k !== '(idle) ').sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `${pct(us)}  ${k}`);
  const origins = [...byOrigin].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, us]) => `${k} ${((100 * us) / busy).toFixed(0)}%`);
  // Inclusive: makam's own functions and the libraries' entry points, not the event loop's frames.
  const entry = /(services\/|fastify\/lib\/(route|hooks|reply|handle-request)|ioredis\/built\/(Redis|Pipeline|DataHandler)|pino\/lib\/proto|bullmq\/dist|fast-json-stringify|_http_server|net:)/;
  const inclusiveLines = [...inclusive].filter(([k]) => entry.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `${pct(us)}  ${k}`);
  return `${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (shares below are of busy time; GC ${pct(self.get('(garbage collector) ') ?? 0).trim()}):\n${lines.join('\n')}\n  by origin: ${origins.join(', ')}\n  inclusive (with what they call), makam's code and libraries' entry points:\n${inclusiveLines.join('\n')}`;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

const { url: redisUrl, stop: stopRedis } = await startLocalRedis();
const profDir = args['keep-profile'] ?? (await mkdtemp(path.join(tmpdir(), 'makam-prof-')));
const storeDir = await mkdtemp(path.join(tmpdir(), 'makam-prof-store-'));
let api: ChildProcess | null = null;
let floor: ChildProcess | null = null;
const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
try {
  await redis.connect();
  const prefix = 'prof';
  const apiPort = await freePort();
  const profiling = args['no-profile'] ? [] : ['--cpu-prof', '--cpu-prof-interval', '250', '--cpu-prof-dir', profDir];
  api = spawn(process.execPath, [...profiling, 'services/api/src/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, REDIS_URL: redisUrl, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: storeDir, MAKAM_API_PORT: String(apiPort),
      MAKAM_LOG_LEVEL: process.env.MAKAM_LOG_LEVEL ?? 'info', MAKAM_RESOURCE_CLASSES: 'cpu', MAKAM_RATE_LIMIT_PER_MINUTE: '100000000', MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '100000000', MAKAM_TENANT_MAX_ACTIVE_JOBS: '100000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${apiUrl}/readyz`).then((r) => r.ok).catch(() => false))) break;
    if (i > 300) throw new Error('the API did not start');
    await sleep(100);
  }
  const key = await createKey(redisUrl, prefix, 'prof');
  const auth = { authorization: `Bearer ${key}` };
  const upload = await send(`${apiUrl}/v1/datasets`, 'POST', { ...auth, 'content-type': 'application/jsonl' }, await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8'));
  const dataset = JSON.parse(upload.body).id as string;
  const body = JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset, hyperparameters: { validation_fraction: 0.2 } });
  const post = async () => {
    const r = await send(`${apiUrl}/v1/jobs`, 'POST', { ...auth, 'content-type': 'application/json' }, body);
    if (r.status !== 202) throw new Error(`POST answered ${r.status}: ${r.body}`);
  };
  await post();
  const one = (await redis.zrange(`${prefix}:jobs`, 0, 0))[0]!;
  const get = async () => {
    const r = await send(`${apiUrl}/v1/jobs/${one}`, 'GET', auth);
    if (r.status !== 200) throw new Error(`GET answered ${r.status}: ${r.body}`);
  };
  await load(200, post); // warm-up
  await load(200, get);
  // One request of each, command by command (what the counts below are made of).
  const monitor = await redis.monitor();
  let seen: string[] = [];
  monitor.on('monitor', (_time: string, argv: string[]) => seen.push(argv.map((a) => (a.length > 40 ? `${a.slice(0, 37)}...` : a)).join(' ')));
  for (const [name, fn] of [['POST /v1/jobs', post], ['GET /v1/jobs/:id', get]] as const) {
    seen = [];
    await fn();
    await sleep(200);
    const commands = seen.filter((c) => !/^(bzpopmin|xreadgroup|xautoclaim|zrangebyscore|zpopmin|rpoplpush|info|ping)\b/i.test(c));
    // What the API sent (ioredis spells commands in lower case, the scripts' own calls are upper
    // case), a MULTI ... EXEC counted once: the request's round trips to Redis.
    let trips = 0;
    let inMulti = false;
    for (const c of commands.filter((c) => /^[a-z]/.test(c))) {
      if (c.startsWith('multi')) inMulti = true;
      else if (c.startsWith('exec')) (inMulti = false), trips++;
      else if (!inMulti) trips++;
    }
    console.log(`${name}, one request (${trips} round trips to Redis):\n  ${commands.join('\n  ')}`);
  }
  monitor.disconnect();
  // CPU time a process spent (user + system, from /proc, in clock ticks of 10 ms).
  const cpuMs = async (pid: number): Promise<number> => {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  };
  const floorPort = await freePort();
  floor = spawn(process.execPath, ['bench/orchestration-floor.ts'], {
    cwd: ROOT,
    env: { ...process.env, FLOOR_REDIS_URL: redisUrl, FLOOR_PORT: String(floorPort), FLOOR_QUEUE: 'floor-train', FLOOR_QUEUE_PREFIX: `${prefix}-floor`, FLOOR_RECORD_PREFIX: `${prefix}:job:` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => floor!.stdout!.on('data', (b: Buffer) => b.toString().includes('floor listening') && resolve()));
  const floorUrl = `http://127.0.0.1:${floorPort}`;
  const floorPost = async () => void (await send(`${floorUrl}/jobs`, 'POST', { 'content-type': 'application/json' }, body));
  const floorGet = async () => void (await send(`${floorUrl}/jobs/${one}`, 'GET', {}));
  await load(200, floorPost);
  await load(200, floorGet);
  const windows: Array<[string, [number, number]]> = [];
  const phases = [['POST /v1/jobs', post, floorPost], ['GET /v1/jobs/:id', get, floorGet]] as const;
  for (const [name, fn, floorFn] of phases.filter(([name]) => !args.only || name.toLowerCase().startsWith(args.only))) {
    const before = await commandStats(redis);
    const cpu0 = await cpuMs(api.pid!);
    const t0 = nowUs();
    const seconds = await load(N, fn);
    windows.push([name, [t0, nowUs()]]);
    const cpu = (await cpuMs(api.pid!)) - cpu0;
    const after = await commandStats(redis);
    const fcpu0 = await cpuMs(floor.pid!);
    const fseconds = await load(N, floorFn);
    const fcpu = (await cpuMs(floor.pid!)) - fcpu0;
    const us = (1000 * cpu) / N;
    const fus = (1000 * fcpu) / N;
    console.log(`${name}: ${(N / seconds).toFixed(0)} req/s, CPU ${us.toFixed(0)} µs/request; floor ${(N / fseconds).toFixed(0)} req/s, CPU ${fus.toFixed(0)} µs/request; CPU ratio floor/makam ${(fus / us).toFixed(2)} (${CONCURRENCY} clients)`);
    console.log(`  makam: ${perRequest(before, after, N)}`);
  }
  const exited = new Promise((r) => api!.once('exit', r));
  api.kill('SIGTERM');
  await exited;
  api = null;
  const file = args['no-profile'] ? undefined : (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile'));
  if (!args['no-profile'] && !file) throw new Error(`no profile in ${profDir}`);
  const profile = file ? (JSON.parse(await readFile(path.join(profDir, file), 'utf8')) as CpuProfile) : null;
  for (const [name, window] of profile ? windows : []) {
    console.log(`\nAPI CPU profile during the ${name} load (${path.join(profDir, file!)}), self time:`);
    console.log(summarise(profile!, Number(args.top), window));
  }
} finally {
  closeClient();
  if (api) api.kill('SIGKILL');
  if (floor) floor.kill('SIGTERM');
  redis.disconnect();
  await stopRedis();
  if (!args['keep-profile']) await rm(profDir, { recursive: true, force: true });
  await rm(storeDir, { recursive: true, force: true });
}
