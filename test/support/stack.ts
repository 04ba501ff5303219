// Starts the real processes of makam for end-to-end tests: a Python worker (gRPC), the API and a
// dispatcher, each on its own free port, all pointed at one Redis with a prefix of the test's own.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connectWorker } from '../../services/dispatcher/src/grpc/worker-client.ts';
import { redisEnv, type RedisSettings } from '@makam/shared/redis';
import { freePort } from './ports.ts';
import { createKey } from './keys.ts';
import { uniquePrefix } from './redis.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PYTHON = path.join(ROOT, 'workers-python/.venv/bin/python');

export interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
}

function start(name: string, cmd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { name, child, output: () => out };
}

async function stop(proc: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = new Promise((r) => proc.child.once('exit', r));
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface Stack {
  apiUrl: string;
  /** An API key of the tenant `e2e`; api() and json() send it. */
  apiKey: string;
  redisUrl: string;
  prefix: string;
  workerAddress: string;
  /** Every worker's address, in the order of their names (worker, worker2, ...). */
  workerAddresses: string[];
  /** MAKAM_MODEL_ROOTS of the API and the workers (created by no one: a test makes what it needs). */
  modelsDir: string;
  /** The Python worker's --state-dir (its runs are under runs/<job id>/). */
  workerStateDir: string;
  storeDir: string;
  procs: Proc[];
  api(pathname: string, init?: RequestInit): Promise<Response>;
  json<T = any>(pathname: string, init?: RequestInit): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
  logs(): string;
  /** Kills the named process (the last started of that name) with `signal`. */
  kill(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts another dispatcher like the named one (the first, `dispatcher`, by default; one of
   * another name drives every worker), with `env` on top. */
  startDispatcher(name?: string, env?: Record<string, string>): Proc;
  /** Stops the named process (the last started of that name) with SIGTERM, as its supervisor would. */
  stopProc(name: string): Promise<void>;
  /** Uploads the shipped sample dataset (examples/data/lyrics-sample.jsonl). */
  uploadSample(): Promise<{ status: number; body: any }>;
  /** Polls a job until it has succeeded, failed or been cancelled; returns its record. */
  finished(jobId: string, timeoutMs?: number): Promise<any>;
  /** Runs `fn`, printing the processes' logs if it throws. */
  withLogs<T>(fn: () => Promise<T>): Promise<T>;
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number, procs: Proc[]): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) {
      if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) while waiting for ${what}:\n${p.output()}`);
    }
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export interface StackOptions {
  /** Extra environment for the dispatcher (e.g. a short MAKAM_LOCK_MS for takeover tests). */
  dispatcherEnv?: Record<string, string>;
  /** Extra environment for the Python workers (e.g. small upload limits). Workers start cold
   * (MAKAM_WORKER_WARM=0) unless this says otherwise: a warm process preloads torch for 15-20 s of
   * CPU per worker, which a suite of short-lived stacks on 2 cores pays without gaining from it;
   * workers-python/tests/test_warm_*.py and bench/orchestration.ts run warm. */
  workerEnv?: Record<string, string>;
  /** Python workers to start (1); the first is named `worker`, the others `worker2`, `worker3`, ... */
  workers?: number;
  /** Dispatchers to start (1), named `dispatcher`, `dispatcher2`, ...; each drives its own share of
   * the workers (dispatcher i the workers i, i + n, ...), as one dispatcher per host would. */
  dispatchers?: number;
  /** Extra environment for the API (e.g. higher rate limits for a load test). */
  apiEnv?: Record<string, string>;
  /** Key prefixes with one Redis Cluster hash tag (`{t...}`, `{t...}-q`): every key in one slot. */
  hashTag?: boolean;
}

/** `redis`: a URL, or the URL with TLS files (every process gets them as its environment). */
export async function startStack(redis: string | RedisSettings, options: StackOptions = {}): Promise<Stack> {
  const settings = typeof redis === 'string' ? { REDIS_URL: redis } : redis;
  const redisUrl = settings.REDIS_URL;
  const prefix = options.hashTag ? `{${uniquePrefix()}}` : uniquePrefix();
  const queuePrefix = `${prefix}-q`;
  const dir = await mkdtemp(path.join(tmpdir(), 'makam-e2e-'));
  const storeDir = path.join(dir, 'store');
  const workerPorts: number[] = [];
  for (let i = 0; i < (options.workers ?? 1); i++) workerPorts.push(await freePort());
  const apiPort = await freePort();
  const workerAddresses = workerPorts.map((p) => `127.0.0.1:${p}`);
  const workerAddress = workerAddresses[0]!;
  const redisVars = Object.fromEntries(Object.entries(redisEnv(settings)).filter((e): e is [string, string] => e[1] !== undefined));
  // Named models are read only under this root (the API and the worker both check); nothing downloads.
  const modelsDir = path.join(dir, 'models');
  const common = { ...redisVars, MAKAM_MODEL_ROOTS: modelsDir, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: queuePrefix, MAKAM_STORE_DIR: storeDir, MAKAM_LOG_LEVEL: 'info', MAKAM_RESOURCE_CLASSES: 'cpu' };
  const procs: Proc[] = [];
  // One CPU thread a worker: the API, the dispatchers, Redis and every worker share the test host's
  // few cores, and a run given all of them oversubscribes it; torch's threads then wait on each other
  // (a tiny encoder's 6 epochs took 22-34 s with 2 threads beside a busy process, 2.1 s with 1).
  const workerStateDir = path.join(dir, 'worker');
  workerAddresses.forEach((address, i) => {
    const name = i === 0 ? 'worker' : `worker${i + 1}`;
    procs.push(start(name, PYTHON, ['-m', 'makam_worker', '--listen', address, '--state-dir', i === 0 ? workerStateDir : path.join(dir, name)], { PYTHONUNBUFFERED: '1', MAKAM_MODEL_ROOTS: modelsDir, HF_HUB_OFFLINE: '1', MAKAM_WORKER_WARM: '0', MAKAM_WORKER_CPUS: '1', ...options.workerEnv }));
  });
  const api = start('api', process.execPath, ['services/api/src/server.ts'], { ...common, MAKAM_API_PORT: String(apiPort), ...options.apiEnv });
  procs.push(api);
  const dispatchers = options.dispatchers ?? 1;
  const dispatcherEnv: Record<string, string> = { ...common, MAKAM_CLASS: 'cpu', MAKAM_WORKERS: workerAddresses.join(','), MAKAM_CANCEL_POLL_MS: '500', ...options.dispatcherEnv };
  const dispatcherEnvs = new Map(Array.from({ length: dispatchers }, (_, d) => [
    d === 0 ? 'dispatcher' : `dispatcher${d + 1}`,
    { ...dispatcherEnv, MAKAM_WORKERS: workerAddresses.filter((_, i) => i % dispatchers === d).join(',') },
  ]));
  const startDispatcher = (name = 'dispatcher', env: Record<string, string> = {}) =>
    start(name, process.execPath, ['services/dispatcher/src/main.ts'], { ...(dispatcherEnvs.get(name) ?? dispatcherEnv), ...env });
  for (const name of dispatcherEnvs.keys()) procs.push(startDispatcher(name));
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor('the API', async () => (await fetch(`${apiUrl}/readyz`)).ok, 120_000, procs);
    for (const address of workerAddresses) {
      const client = connectWorker(address);
      try {
        await waitFor(`the worker at ${address}`, async () => Boolean(await client.getCapabilities({}, { timeoutMs: 1000 })), 60_000, procs);
      } finally {
        client.close();
      }
    }
  } catch (err) {
    await Promise.all(procs.map((p) => stop(p)));
    throw err;
  }
  const apiKey = await createKey(settings, prefix, 'e2e');
  const withKey = (init?: RequestInit): RequestInit => ({ ...init, headers: { authorization: `Bearer ${apiKey}`, ...(init?.headers as Record<string, string> | undefined) } });
  const stack: Stack = {
    apiUrl,
    apiKey,
    redisUrl,
    prefix,
    workerAddress,
    workerAddresses,
    modelsDir,
    workerStateDir,
    storeDir,
    procs,
    api: (pathname, init) => fetch(`${apiUrl}${pathname}`, withKey(init)),
    json: async <T = any>(pathname: string, init?: RequestInit) => {
      const res = await fetch(`${apiUrl}${pathname}`, withKey(init));
      return { status: res.status, body: (await res.json()) as T };
    },
    uploadSample: async () =>
      stack.json('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')) }),
    finished: (jobId, timeoutMs = 180_000) =>
      eventually(`job ${jobId} to finish`, async () => {
        const { body } = await stack.json(`/v1/jobs/${jobId}`);
        return ['succeeded', 'failed', 'cancelled', 'pruned'].includes(body.status) ? body : null;
      }, timeoutMs, 250),
    kill: async (name, signal) => {
      const proc = procs.filter((p) => p.name === name).at(-1);
      if (!proc) throw new Error(`no process ${name}`);
      const exited = new Promise((r) => proc.child.once('exit', r));
      proc.child.kill(signal);
      await exited;
    },
    stopProc: async (name) => {
      const proc = procs.filter((p) => p.name === name).at(-1);
      if (proc) await stop(proc);
    },
    startDispatcher: (name, env) => {
      const proc = startDispatcher(name, env);
      procs.push(proc);
      return proc;
    },
    logs: () => procs.map((p) => `--- ${p.name}\n${p.output().slice(-20_000)}`).join('\n'),
    withLogs: async (fn) => {
      try {
        const result = await fn();
        if (process.env.MAKAM_TEST_LOGS) console.error(stack.logs());
        return result;
      } catch (err) {
        console.error(stack.logs());
        throw err;
      }
    },
    stop: async () => {
      await Promise.all(procs.map((p) => stop(p)));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** Polls `fn` until it returns a value, failing with `what` after `timeoutMs`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
