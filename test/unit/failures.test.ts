// Failures are told apart by class, as BullMQ tells its own: a JobFailure is an UnrecoverableError
// (BullMQ fails the job at once), a RetryableFailure is not (BullMQ tries again), and a dead Redis
// is known by ioredis' error class or the socket's code, never by the words of a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnrecoverableError } from 'bullmq';
import { Redis } from 'ioredis';
import { isStoreUnavailable } from '../../services/api/src/errors.ts';
import { Detached, JobFailure, RetryableFailure } from '../../services/dispatcher/src/failures.ts';

test('a JobFailure is what BullMQ takes for "do not retry"; its code and message stay apart', () => {
  const failure = new JobFailure('invalid_job', 'epochs: must be at most 1000 (see: the docs)');
  assert.ok(failure instanceof UnrecoverableError);
  assert.equal(failure.code, 'invalid_job');
  assert.equal(failure.message, 'epochs: must be at most 1000 (see: the docs)');
  assert.equal(failure.retryable, false);
  const retryable = new RetryableFailure('run_lost', 'the worker no longer knows the run');
  assert.ok(!(retryable instanceof UnrecoverableError));
  assert.equal(retryable.code, 'run_lost');
  assert.equal(retryable.retryable, true);
  const detached = new Detached();
  assert.ok(!(detached instanceof UnrecoverableError) && !(detached instanceof RetryableFailure));
});

test('a Redis that is away is known by type: ioredis gives up with MaxRetriesPerRequestError', async () => {
  // Port 1 refuses every connection: the command waits out two reconnects, as an API request does.
  const redis = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 2, retryStrategy: () => 20 });
  redis.on('error', () => undefined);
  try {
    const err = await redis.get('anything').then(() => null, (e: unknown) => e);
    assert.ok(isStoreUnavailable(err), String(err));
  } finally {
    redis.disconnect();
  }
  assert.ok(isStoreUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })));
  // Words alone say nothing: an error of ours that mentions a refused connection is not Redis away.
  assert.ok(!isStoreUnavailable(new Error('Connection is closed. ECONNREFUSED')));
  assert.ok(!isStoreUnavailable(null));
});
