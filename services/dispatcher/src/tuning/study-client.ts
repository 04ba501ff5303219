// The dispatcher's side of the study process (`python -m makam_study`, in workers-python): Optuna's
// samplers and pruners are Python, so one long-lived child per dispatcher runs them, over JSON
// lines on stdin/stdout. The studies themselves live in Redis (Optuna's journal storage), so a
// child that dies loses nothing: the next call starts another. The messages are typed once, in
// contracts/study-protocol.json (study-protocol.gen.ts here, makam_study/protocol.py there); a
// request outside it is refused here, before it is written, and a reply outside it fails its call
// with a StudyProtocolError naming the op and the field, so no ill-typed value reaches the caller.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Schema from 'typebox/schema';
import { redisEnv, type RedisSettings } from '@makam/shared/redis';
import type { Logger } from '@makam/shared/logger';
import type { Search } from '@makam/shared/tuning/search';
import { StudyProtocolError } from '../failures.ts';
import { STUDY_DEFS, STUDY_ERROR_CODES, STUDY_REQUEST_SCHEMAS, STUDY_RESULT_SCHEMAS, type StudyOp, type StudyOps } from '@makam/shared/tuning/study-protocol.gen';

const CALL_MS = 120_000;

export type AskedTrial = StudyOps['ask']['result'];
export type StudySummary = StudyOps['summary']['result'];

const compileAll = (schemas: Record<StudyOp, Record<string, unknown>>) =>
  Object.fromEntries(Object.entries(schemas).map(([op, schema]) => [op, Schema.Compile({ $defs: STUDY_DEFS, ...schema } as Schema.XSchema)])) as Record<StudyOp, Schema.Validator>;
const requestValidators = compileAll(STUDY_REQUEST_SCHEMAS);
const resultValidators = compileAll(STUDY_RESULT_SCHEMAS);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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

/**
 * The result of a reply to `op`, checked against the contract: the value on ok, a StudyProtocolError
 * naming the field when the reply or its result breaks it, or the study's own refusal.
 */
export function checkStudyReply<K extends StudyOp>(op: K, reply: Record<string, unknown>): StudyOps[K]['result'] {
  if (reply.ok === true) {
    if (!Object.hasOwn(reply, 'result')) throw new StudyProtocolError(op, '/result', 'is missing');
    const [ok, errors] = resultValidators[op].Errors(reply.result);
    if (!ok) {
      const first = errors[0];
      throw new StudyProtocolError(op, `/result${first?.instancePath ?? ''}`, first?.message ?? 'does not match');
    }
    return reply.result as StudyOps[K]['result'];
  }
  if (reply.ok !== false) throw new StudyProtocolError(op, '/ok', 'must be true or false');
  const error = reply.error;
  if (!isObject(error) || typeof error.message !== 'string' || !(STUDY_ERROR_CODES as readonly unknown[]).includes(error.code)) {
    throw new StudyProtocolError(op, '/error', `must be { code: ${STUDY_ERROR_CODES.join(' | ')}, message: string }`);
  }
  throw new Error(`study ${error.code}: ${error.message}`);
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
  private readonly pending = new Map<number, { op: StudyOp; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
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
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        this.log.warn({ line: line.slice(0, 200) }, 'study process wrote a line that is not JSON');
        return;
      }
      // A line that names no call in flight (an id null refusal of a line it could not read) is only logged.
      const id = isObject(msg) && typeof msg.id === 'number' ? msg.id : undefined;
      const call = id === undefined ? undefined : this.pending.get(id);
      if (!call || id === undefined || !isObject(msg)) {
        this.log.warn({ line: line.slice(0, 200) }, 'study process wrote a reply to no call in flight');
        return;
      }
      this.pending.delete(id);
      clearTimeout(call.timer);
      try {
        call.resolve(checkStudyReply(call.op, msg));
      } catch (err) {
        call.reject(err as Error);
      }
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
      this.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject, timer });
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

  /** Removes the study's keys from Redis (its tune job's record is being removed) and forgets it. */
  delete(study: string): Promise<{ deleted: boolean }> {
    return this.call('delete', { study });
  }

  close(): void {
    const child = this.child;
    this.child = null;
    if (!child) return;
    child.stdin.end();
    setTimeout(() => child.kill('SIGKILL'), 2000).unref();
  }
}
