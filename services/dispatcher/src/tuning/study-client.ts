// The dispatcher's side of the study process (`python -m makam_study`, in workers-python): Optuna's
// samplers and pruners are Python, so one long-lived child per dispatcher runs them, over JSON
// lines on stdin/stdout. The studies themselves live in Redis (Optuna's journal storage), so a
// child that dies loses nothing: the next call starts another. The messages are typed once, in
// contracts/study-protocol.json (study-protocol.gen.ts here, makam_study/protocol.py there); a
// request outside it is refused here, before it is written.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Schema from 'typebox/schema';
import { redisEnv, type RedisSettings } from '@makam/shared/redis';
import type { Logger } from '@makam/shared/logger';
import type { Search } from '@makam/shared/tuning/search';
import { STUDY_REQUEST_SCHEMAS, type StudyOp, type StudyOps, type StudyReply } from './study-protocol.gen.ts';

const CALL_MS = 120_000;

export type AskedTrial = StudyOps['ask']['result'];
export type StudySummary = StudyOps['summary']['result'];

const requestValidators = Object.fromEntries(
  Object.entries(STUDY_REQUEST_SCHEMAS).map(([op, schema]) => [op, Schema.Compile(schema as Schema.XSchema)]),
) as Record<StudyOp, Schema.Validator>;

/** Refuses a request line outside contracts/study-protocol.json (an unknown op, a missing, unknown or ill-typed arg). */
export function checkStudyRequest(request: { id: number; op: string } & Record<string, unknown>): void {
  const validator = Object.hasOwn(requestValidators, request.op) ? requestValidators[request.op as StudyOp] : undefined;
  if (!validator) throw new Error(`study bad_request: unknown op ${JSON.stringify(request.op)} (not in contracts/study-protocol.json)`);
  const [ok, errors] = validator.Errors(request);
  if (!ok) {
    const first = errors[0];
    throw new Error(`study bad_request: ${request.op}${first ? ` ${first.instancePath || '/'} ${first.message}` : ''} (contracts/study-protocol.json)`);
  }
}

/** The checkout holding this file: the nearest folder above it with workers-python/pyproject.toml. */
function repoRoot(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'workers-python', 'pyproject.toml'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The workers-python virtual environment of a checkout, else python3 from PATH (MAKAM_STUDY_PYTHON overrides both). */
export function defaultStudyPython(): string {
  const root = repoRoot();
  const venv = root && path.join(root, 'workers-python', '.venv', 'bin', 'python');
  return venv && existsSync(venv) ? venv : 'python3';
}

export class StudyClient {
  private child: ChildProcessWithoutNullStreams | null = null;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private readonly python: string;
  private readonly redis: RedisSettings;
  private readonly log: Logger;

  constructor(python: string, redis: RedisSettings, log: Logger) {
    this.python = python;
    this.redis = redis;
    this.log = log.child({ component: 'study' });
  }

  /** The running child's pid, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private ensure(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    // The Redis URL (it may hold a password) and its TLS files go by environment, never on a
    // command line; unset TLS variables are removed, not inherited.
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [name, value] of Object.entries(redisEnv(this.redis))) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    const child = spawn(this.python, ['-m', 'makam_study'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: StudyReply;
      try {
        msg = JSON.parse(line);
      } catch {
        this.log.warn({ line: line.slice(0, 200) }, 'study process wrote a line that is not JSON');
        return;
      }
      const call = msg.id === null ? undefined : this.pending.get(msg.id);
      if (!call || msg.id === null) return;
      this.pending.delete(msg.id);
      clearTimeout(call.timer);
      if (msg.ok) call.resolve(msg.result);
      else call.reject(new Error(`study ${msg.error?.code ?? 'error'}: ${msg.error?.message ?? ''}`));
    });
    createInterface({ input: child.stderr }).on('line', (line) => this.log.debug({ line }, 'study process'));
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = null;
      for (const [id, call] of this.pending) {
        clearTimeout(call.timer);
        call.reject(new Error(`the study process ${why}`));
        this.pending.delete(id);
      }
    };
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.on('error', (err) => gone(`could not run ${this.python}: ${err.message}`));
    child.stdin.on('error', () => undefined); // reported by 'exit'
    return child;
  }

  private call<K extends StudyOp>(op: K, args: StudyOps[K]['args']): Promise<StudyOps[K]['result']> {
    const id = this.nextId++;
    const request = { id, op, ...args };
    try {
      checkStudyRequest(request);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const child = this.ensure();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the study process did not answer ${op} within ${CALL_MS / 1000} s`));
        child.kill('SIGKILL'); // a stuck child is replaced on the next call
      }, CALL_MS);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      child.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }

  create(study: string, search: Search): Promise<{ created: boolean }> {
    const { space, objective, sampler, pruner, seed, trials } = search;
    return this.call('create', { study, space: space as StudyOps['create']['args']['space'], direction: objective.direction, sampler, pruner, seed, trials });
  }

  ask(study: string): Promise<AskedTrial> {
    return this.call('ask', { study });
  }

  /** Reports a trial's objective at an epoch; answers whether the pruner stops it. */
  report(study: string, number: number, step: number, value: number): Promise<{ prune: boolean }> {
    return this.call('report', { study, number, step, value });
  }

  tell(study: string, number: number, state: 'complete' | 'pruned' | 'fail', value: number | null): Promise<{ told: boolean }> {
    return this.call('tell', { study, number, state, ...(value !== null ? { value } : {}) });
  }

  summary(study: string, importances = false): Promise<StudySummary> {
    return this.call('summary', { study, importances });
  }

  /** Closes (as failed) every running trial not in `keep`: trials whose job is gone. */
  failRunning(study: string, keep: number[]): Promise<{ failed: number[] }> {
    return this.call('fail_running', { study, keep });
  }

  close(): void {
    const child = this.child;
    this.child = null;
    if (!child) return;
    child.stdin.end();
    setTimeout(() => child.kill('SIGKILL'), 2000).unref();
  }
}
