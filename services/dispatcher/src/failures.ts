// How a job's attempt ends when it does not end well. The class says what happens next, as BullMQ's
// own error classes do: a JobFailure is a BullMQ UnrecoverableError, so the job fails at once; a
// RetryableFailure is any other error, so BullMQ tries again; Detached means this dispatcher let go
// of the job and another picks it up. Each failure carries the code the job record shows.
import { UnrecoverableError } from 'bullmq';

/** A failure no retry can cure (a bad spec, a missing dataset, a worker too small): the job fails now. */
export class JobFailure extends UnrecoverableError {
  /** The code the job record's error shows (`dataset_missing`, `invalid_job`, …). */
  readonly code: string;
  readonly retryable = false;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message);
    this.code = code;
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/**
 * The study process answered outside contracts/study-protocol.json (a field missing or ill-typed):
 * a bug on one side of the protocol, which no retry cures, so the tune job fails at once.
 */
export class StudyProtocolError extends JobFailure {
  /** The op whose reply broke the contract. */
  readonly op: string;
  /** Where in the reply (a JSON pointer, `/result/number`). */
  readonly field: string;

  constructor(op: string, field: string, problem: string) {
    super('study_protocol_error', `the study process's reply to ${op} breaks contracts/study-protocol.json: ${field || '/'} ${problem}`);
    this.op = op;
    this.field = field;
  }
}

/** A failure another attempt may cure (a worker crash, a lost worker, a corrupt download). */
export class RetryableFailure extends Error {
  /** The code the job record's error shows (`worker_unreachable`, `run_lost`, …). */
  readonly code: string;
  readonly retryable = true;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * This dispatcher stopped following the job (it is closing) and left the run alone: not a failure
 * of the job, which a dispatcher that re-attaches takes on. Nothing is written to the job record.
 */
export class Detached extends Error {
  constructor(message = 'the dispatcher is closing; the job is left to the next one') {
    super(message);
  }
}
