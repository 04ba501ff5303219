import type { TraceCarrier } from './tracing.ts';
import { Job, Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import { execTransaction } from './redis.ts';

/** The payload of a training job on a class's queue: the job record in Redis holds the rest. */
export interface TrainJobData {
  jobId: string;
  /** The W3C trace context of the enqueue (tracing.ts), for the dispatcher's spans; absent when tracing is off. */
  trace?: TraceCarrier;
}

export const queueName = (resourceClass: string): string => `train-${resourceClass}`;
/** Tune jobs wait here for a coordinator in a dispatcher of their class; their trials go to queueName. */
export const tuneQueueName = (resourceClass: string): string => `tune-${resourceClass}`;

// BullMQ's own entries of finished jobs (the job record in Redis is the one that counts): bounded
// by age and by count, so a busy queue cannot grow without end.
const KEEP_FINISHED = { removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 }, removeOnFail: { age: 30 * 24 * 3600, count: 50_000 } } satisfies JobsOptions;

/** A coordinator that dies is replaced by another that picks the study up where it was. */
export function tuneJobOptions(jobId: string): JobsOptions {
  return { jobId, attempts: 20, backoff: { type: 'exponential', delay: 2_000 }, ...KEEP_FINISHED };
}

/** Retries with backoff are for worker faults; bad jobs end with UnrecoverableError. */
export function trainJobOptions(jobId: string, attempts: number): JobsOptions {
  return {
    jobId,
    attempts,
    backoff: { type: 'exponential', delay: 2_000 },
    ...KEEP_FINISHED,
  };
}

export function createQueues(classes: string[], connection: ConnectionOptions, prefix: string, name = queueName): Map<string, Queue<TrainJobData>> {
  return new Map(classes.map((c) => [c, new Queue<TrainJobData>(name(c), { connection, prefix })]));
}

/**
 * Queues job `name` as Queue.add does, together with the caller's own `writes`: one MULTI, so the
 * writes and the queueing are one round trip and one transaction (BullMQ's Job.addJob on a
 * transaction, as its addBulk does). The MULTI goes on `via`, a connection of the caller's to the
 * same Redis, not on the queue's: ioredis copies every script defined on a connection onto each
 * MULTI made from it, and BullMQ defines ~60 on the queue's (8% of a POST's busy time); `via` gets
 * only the one script the job needs, copied from the queue's connection. `writes` may throw, and
 * then nothing is sent. Throws the first command's error, or BullMQ's refusal of the job (a
 * negative code in its reply); else the replies, the writes' first.
 */
export async function addJobWith<D>(queue: Queue<D>, via: Redis, name: string, data: D, opts: JobsOptions, writes: (multi: ChainableCommander) => void): Promise<unknown[]> {
  const scripts = (await queue.getBackend().client) as unknown as Redis;
  // Made anew for each send: a MULTI refused for want of a replica is sent again (execTransaction).
  const replies = await execTransaction(via, async () => {
    const multi = via.multi();
    writes(multi);
    // What BullMQ's own transactions have (ioredis-client.js augmentTransaction), and all that Job.addJob calls.
    const transaction = Object.assign(multi, {
      runCommand: (command: string, args: unknown[]) => {
        scriptOn(via, scripts, command).call(multi, args);
        return transaction;
      },
    });
    await new Job(queue, name, data, { ...queue.defaultJobOptions, ...opts }, opts.jobId).addJob(transaction as unknown as Parameters<Job['addJob']>[0]);
    return multi;
  });
  if (!replies) throw new Error(`the transaction queueing job ${opts.jobId} was aborted`);
  for (const [err] of replies) if (err) throw err;
  const code = replies.at(-1)![1];
  if (typeof code === 'number' && code < 0) throw new Error(`BullMQ refused job ${opts.jobId} (code ${code})`);
  return replies.map(([, reply]) => reply);
}

type ScriptCommand = (this: ChainableCommander, args: unknown[]) => unknown;

/** BullMQ's script `command` as a command of `via`, defined there from `source`'s definition the first time. */
function scriptOn(via: Redis, source: Redis, command: string): ScriptCommand {
  const commands = via as unknown as Record<string, ScriptCommand | undefined>;
  if (!commands[command]) {
    const script = (source.scriptsSet as Record<string, { lua: string; numberOfKeys: number | null } | undefined>)[command];
    if (!script) throw new Error(`BullMQ's script ${command} is not defined on the queue's connection`);
    via.defineCommand(command, { lua: script.lua, numberOfKeys: script.numberOfKeys ?? undefined });
  }
  return commands[command]!;
}
