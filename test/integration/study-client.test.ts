// The dispatcher's StudyClient against the real study process (python -m makam_study) and a real
// Redis: a study outlives the process that ran it, a child that dies is replaced on the next
// call, and refusals come back as errors naming their code.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@makam/shared/logger';
import { studyKey, type Search } from '@makam/shared/tuning/search';
import { StudyClient, checkStudyRequest, defaultStudyPython } from '../../services/dispatcher/src/tuning/study-client.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let redis: TestRedis;
let client: StudyClient;
const search: Search = {
  space: { learning_rate: { type: 'float', low: 1e-5, high: 1e-2, log: true }, layers: { type: 'int', low: 1, high: 4 } },
  objective: { metric: 'macro_f1', direction: 'maximize' },
  trials: 10,
  parallelism: 2,
  sampler: 'tpe',
  pruner: { type: 'median', startup_trials: 1, warmup_epochs: 1 },
  seed: 0,
};

before(async () => {
  redis = await startRedis();
  client = new StudyClient(defaultStudyPython(), { REDIS_URL: redis.url }, createLogger('test', 'silent'));
});
after(async () => {
  client?.close();
  await redis?.stop();
});

test('a study outlives its process: a killed child is replaced on the next call and the numbering goes on', async () => {
  const key = studyKey(uniquePrefix(), 'job_01jd0000000000000000000000');
  assert.deepEqual(await client.create(key, search), { created: true });
  assert.deepEqual(await client.create(key, search), { created: false });
  const first = await client.ask(key);
  assert.equal(first.number, 0);
  assert.ok((first.params!.learning_rate as number) >= 1e-5 && (first.params!.learning_rate as number) <= 1e-2);
  assert.ok([1, 2, 3, 4].includes(first.params!.layers as number));
  for (const epoch of [1, 2]) assert.deepEqual(await client.report(key, 0, epoch, 0.5 + epoch / 10), { prune: false });
  assert.deepEqual(await client.tell(key, 0, 'complete', 0.7), { told: true });

  const pid = client.pid!;
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 200));
  const second = await client.ask(key);
  assert.notEqual(client.pid, pid, 'a new study process');
  assert.equal(second.number, 1, 'the study went on where it was');
  assert.deepEqual(await client.tell(key, 1, 'fail', null), { told: true });
  const summary = await client.summary(key);
  assert.deepEqual(summary.trials.map((t) => [t.number, t.state]), [[0, 'COMPLETE'], [1, 'FAIL']]);
  assert.deepEqual(summary.best, { number: 0, value: 0.7, params: first.params });
  assert.deepEqual(summary.trials[0]!.intermediate, [[1, 0.6], [2, 0.7]]);
});

test('a call in flight when the child dies is refused, not left waiting; refusals carry their code', async () => {
  const key = studyKey(uniquePrefix(), 'job_01jd0000000000000000000001');
  await client.create(key, search);
  // Stopped first, so the call is surely in flight when the child dies: on a loaded host the parent
  // can lose the CPU between the write and the kill for long enough that the child answers.
  process.kill(client.pid!, 'SIGSTOP');
  const pending = client.summary(key, true);
  process.kill(client.pid!, 'SIGKILL');
  await assert.rejects(pending, /the study process exited/);
  await assert.rejects(client.ask(studyKey(uniquePrefix(), 'job_01jd0000000000000000000002')), /study not_found/);
  await assert.rejects(client.create(key, { ...search, seed: 1 }), /study conflict/);
});

test('a request outside contracts/study-protocol.json is refused before it is written', async () => {
  const key = studyKey(uniquePrefix(), 'job_01jd0000000000000000000003');
  assert.throws(() => checkStudyRequest({ id: 1, op: 'drop', study: key }), /study bad_request: unknown op "drop"/);
  assert.throws(() => checkStudyRequest({ id: 1, op: 'ask', study: key, extra: 1 }), /study bad_request: ask/);
  assert.throws(() => checkStudyRequest({ id: 1, op: 'tell', study: key, number: 0, state: 'done' }), /study bad_request: tell \/state/);
  assert.throws(() => checkStudyRequest({ id: 1, op: 'report', study: key, number: 0, step: 1 }), /study bad_request: report/);
  assert.doesNotThrow(() => checkStudyRequest({ id: 1, op: 'tell', study: key, number: 0, state: 'fail', value: null }));
  // The contract's if/then (a complete trial needs a value) and its per-type ParamSpace hold here too.
  assert.throws(() => checkStudyRequest({ id: 1, op: 'tell', study: key, number: 0, state: 'complete' }), /study bad_request: tell/);
  const create = { id: 1, op: 'create', study: key, direction: 'minimize', sampler: 'tpe', pruner: { type: 'median' }, seed: 1, trials: 3 };
  assert.throws(() => checkStudyRequest({ ...create, space: { x: { type: 'int', low: 0.5, high: 2 } } }), /study bad_request: create \/space/);
  assert.throws(() => checkStudyRequest({ ...create, space: { x: { type: 'categorical', choices: [1], low: 0 } } }), /study bad_request: create \/space/);
  assert.doesNotThrow(() => checkStudyRequest({ ...create, space: { x: { type: 'int', low: 1, high: 2 } } }));
  // Through the client: refused without reaching (or starting) the study process.
  client.close();
  await assert.rejects(client.create(key, { ...search, sampler: 'annealing' as Search['sampler'] }), /study bad_request: create \/sampler/);
  await assert.rejects(client.report(key, 0.5, 1, 0.1), /study bad_request: report \/number/);
  assert.equal(client.pid, undefined, 'no process was started for a refused request');
  assert.deepEqual(await client.create(key, search), { created: true });
});
