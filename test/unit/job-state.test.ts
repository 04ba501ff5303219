import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_STATUSES, canTransition, isTerminal, sourcesOf } from '@makam/shared/job-state';

test('a job moves queued → running → succeeded', () => {
  assert.ok(canTransition('queued', 'running'));
  assert.ok(canTransition('running', 'succeeded'));
});

test('finished jobs never move again', () => {
  for (const from of ['succeeded', 'failed', 'cancelled'] as const) {
    assert.ok(isTerminal(from));
    for (const to of JOB_STATUSES) assert.equal(canTransition(from, to), false, `${from} → ${to}`);
  }
});

test('a queued job cannot succeed without running', () => {
  assert.equal(canTransition('queued', 'succeeded'), false);
  assert.equal(canTransition('queued', 'cancelling'), false);
});

test('cancel paths: queued jobs cancel at once, running ones through cancelling', () => {
  assert.ok(canTransition('queued', 'cancelled'));
  assert.ok(canTransition('running', 'cancelling'));
  assert.ok(canTransition('cancelling', 'cancelled'));
  assert.equal(canTransition('cancelling', 'running'), false);
  assert.equal(canTransition('cancelling', 'queued'), false, 'a cancel must not be undone by a retry');
});

test('a retry sends a running job back to the queue', () => {
  assert.deepEqual(sourcesOf('queued'), ['running']);
  assert.deepEqual(sourcesOf('running'), ['queued']);
});
