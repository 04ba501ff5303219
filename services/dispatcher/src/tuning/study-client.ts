// The dispatcher's side of the study process (`python -m makam_study`, in workers-python): Optuna's
// samplers and pruners are Python, so one long-lived child per dispatcher runs them, over JSON
// lines on stdin/stdout. The studies themselves live in Redis (Optuna's journal storage), so a
// child that dies loses nothing: the next call starts another.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { redisEnv, type Logger, type ParamSpace, type RedisSettings, type Search } from '@makam/shared';

const CALL_MS = 120_000;

export interface AskedTrial {
  number: number | null;
  params: Record<string, unknown> | null;
}

export interface StudySummary {
  trials: Array<{ number: number; state: 'RUNNING' | 'COMPLETE' | 'PRUNED' | 'FAIL' | 'WAITING'; params: Record<string, unknown>; value: number | null; intermediate: Array<[number, number]> }>;
  best: { number: number; value: number; params: Record<string, unknown> } | null;
  importances: Record<string, number> | null;
}

/** The workers-python virtual environment of a checkout, else python3 from PATH. */
export function defaultStudyPython(): string {
  const venv = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../workers-python/.venv/bin/python');
  return existsSync(venv) ? venv : 'python3';
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
      let msg: { id: number; ok: boolean; result?: unknown; error?: { code: string; message: string } };
      try {
        msg = JSON.parse(line);
      } catch {
        this.log.warn({ line: line.slice(0, 200) }, 'study process wrote a line that is not JSON');
        return;
      }
      const call = this.pending.get(msg.id);
      if (!call) return;
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

  private call<T>(op: string, args: Record<string, unknown>): Promise<T> {
    const child = this.ensure();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the study process did not answer ${op} within ${CALL_MS / 1000} s`));
        child.kill('SIGKILL'); // a stuck child is replaced on the next call
      }, CALL_MS);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  create(study: string, search: Search): Promise<{ created: boolean }> {
    const { space, objective, sampler, pruner, seed, trials } = search;
    return this.call('create', { study, space: space as Record<string, ParamSpace>, direction: objective.direction, sampler, pruner, seed, trials });
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
