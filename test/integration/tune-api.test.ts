// Tune job submissions against the real API and Redis: a good search is stored with its defaults
// and queued for a coordinator; a bad one is refused naming the field, and nothing is stored.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import type { InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import { tuneQueueName } from '@makam/shared/queues';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

let api: InjectApi;
let datasetId: string;
const call = (opts: InjectOptions) => api.call(opts);

before(async () => {
  api = await startInjectApi();
  datasetId = (await api.upload()).id;
});
after(async () => {
  await api?.close();
});

const scratch = (search: Record<string, unknown>, hyperparameters: Record<string, unknown> = {}) => ({
  kind: 'tune',
  model: { family: 'scratch' },
  dataset: datasetId,
  hyperparameters: { epochs: 2, ...hyperparameters },
  search,
});

test("a tune job is stored with its search's defaults, without the searched values, and queued for a coordinator", async () => {
  const res = await call({ method: 'POST', url: '/v1/jobs', payload: scratch({ space: { learning_rate: { type: 'float', low: 1e-5, high: 1e-2, log: true }, heads: { type: 'categorical', choices: [2, 4] } } }) });
  assert.equal(res.statusCode, 202, res.body);
  const job = res.json();
  assert.equal(job.kind, 'tune');
  assert.deepEqual(job.search, {
    space: { learning_rate: { type: 'float', low: 1e-5, high: 1e-2, log: true }, heads: { type: 'categorical', choices: [2, 4] } },
    objective: { metric: 'macro_f1', direction: 'maximize' },
    trials: 20,
    parallelism: 2,
    sampler: 'tpe',
    pruner: { type: 'median' },
    seed: 0,
  });
  assert.equal(job.hyperparameters.learning_rate, undefined);
  assert.equal(job.hyperparameters.heads, undefined);
  assert.equal(job.hyperparameters.epochs, 2);
  assert.equal(job.hyperparameters.metric_for_best_model, 'macro_f1');
  assert.deepEqual(job.study, { trials: 20, complete: 0, pruned: 0, failed: 0, running: 0, best: null });
  const connection = new Redis(api.redis.url);
  const queue = new Queue(tuneQueueName(job.resource_class), { connection, prefix: `${api.prefix}-q` });
  assert.equal((await queue.getJob(job.id))?.name, 'tune');
  await queue.close();
  connection.disconnect();
  const trials = await call({ method: 'GET', url: `/v1/jobs/${job.id}/trials` });
  assert.deepEqual(trials.json(), { object: 'list', data: [] });
  // Cancelled while queued: at once, and off the tune queue.
  const cancelled = await call({ method: 'POST', url: `/v1/jobs/${job.id}/cancel` });
  assert.equal(cancelled.json().status, 'cancelled');
});

test('minimizing validation_loss is the default direction for it; a tune is placed where its largest trial fits', async () => {
  const res = await call({ method: 'POST', url: '/v1/jobs', payload: scratch({ space: { d_model: { type: 'categorical', choices: [64, 1024] } }, objective: { metric: 'validation_loss' } }, { batch_size: 64, layers: 12, ff_dim: 4096, heads: 8 }) });
  assert.equal(res.statusCode, 202, res.body);
  const job = res.json();
  assert.equal(job.search.objective.direction, 'minimize');
  const small = await call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'scratch' }, dataset: datasetId, hyperparameters: { batch_size: 64, layers: 12, ff_dim: 4096, heads: 8, d_model: 64 } } });
  assert.ok(job.estimate.total_bytes > small.json().estimate.total_bytes, 'estimated with d_model 1024, not 64');
});

test('a bad search is refused with 400 naming the field, and nothing is stored', async () => {
  const before = await call({ method: 'GET', url: '/v1/jobs?limit=100' });
  const cases: Array<[unknown, string, RegExp]> = [
    [scratch({ space: { learning_rat: { type: 'float', low: 0.1, high: 0.2 } } }), 'search.space.learning_rat', /not a hyperparameter; family 'scratch' can search: .*learning_rate/],
    [scratch({ space: { lora_r: { type: 'int', low: 4, high: 8 } } }), 'search.space.lora_r', /applies to decoder/],
    [scratch({ space: { learning_rate: { type: 'float', low: 0.01, high: 0.001 } } }), 'search.space.learning_rate.high', /empty/],
    [scratch({ space: { layers: { type: 'int', low: 4, high: 2 } } }), 'search.space.layers.high', /empty/],
    [scratch({ space: { learning_rate: { type: 'float', low: 0, high: 0.01, log: true } } }), 'search.space.learning_rate.low', /log-scale range needs low > 0/],
    [scratch({ space: { layers: { type: 'float', low: 1, high: 4 } } }), 'search.space.layers.type', /use type 'int'/],
    [scratch({ space: { layers: { type: 'int', low: 1, high: 100 } } }), 'search.space.layers', /100 is not a valid layers/],
    [scratch({ space: { pooling: { type: 'categorical', choices: ['mean', 'max'] } } }), 'search.space.pooling', /"max" is not a valid pooling/],
    [scratch({ space: { pooling: { type: 'categorical' } } }), 'search.space.pooling.choices', /needs 'choices'/],
    [scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } } }, { dropout: 0.1 }), 'search.space.dropout', /both fixed in hyperparameters and searched/],
    [scratch({ space: { layers: { type: 'int', low: 1, high: 8 }, heads: { type: 'categorical', choices: [1, 2, 4] } }, sampler: 'grid', trials: 10 }), 'search.trials', /the grid has 24 points but trials is 10/],
    [scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } }, sampler: 'grid' }), 'search.space.dropout', /a grid needs a finite set of values/],
    [scratch({ space: {} }), 'search.space', /fewer than 1|at least 1|must NOT have fewer/],
    [scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } }, objective: { metric: 'f1' } }), 'search.objective.metric', /macro_f1/],
    [scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } }, sampler: 'cmaes' }), 'search.sampler', /tpe/],
    [scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } }, parallelism: 0 }), 'search.parallelism', />= 1/],
    [{ ...scratch({ space: { dropout: { type: 'float', low: 0, high: 0.5 } } }), kind: 'finetune' }, 'search', /belongs to tune jobs/],
    [{ kind: 'tune', model: { family: 'scratch' }, dataset: datasetId }, 'search', /needs 'search'/],
  ];
  for (const [payload, param, message] of cases) {
    const res = await call({ method: 'POST', url: '/v1/jobs', payload: payload as object });
    assert.equal(res.statusCode, 400, `${param}: ${res.body}`);
    const { error } = res.json();
    assert.equal(error.param, param, res.body);
    assert.match(error.message, message, res.body);
  }
  const afterList = await call({ method: 'GET', url: '/v1/jobs?limit=100' });
  assert.deepEqual(afterList.json().data.map((j: { id: string }) => j.id), before.json().data.map((j: { id: string }) => j.id));
});

test('trials of a job that is not a tune job answer 400', async () => {
  const res = await call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: datasetId } });
  const trials = await call({ method: 'GET', url: `/v1/jobs/${res.json().id}/trials` });
  assert.equal(trials.statusCode, 400);
  assert.equal(trials.json().error.code, 'not_a_tune_job');
});

test('the job list filters by kind, paged as the whole list is', async () => {
  const all = (await call({ method: 'GET', url: '/v1/jobs?limit=100' })).json().data as Array<{ id: string; kind: string }>;
  assert.ok(all.some((j) => j.kind === 'tune') && all.some((j) => j.kind === 'finetune'));
  for (const kind of ['tune', 'finetune']) {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Array<{ id: string; kind: string }>; next_cursor: string | null } = (await call({ method: 'GET', url: `/v1/jobs?kind=${kind}&limit=1${cursor ? `&after=${cursor}` : ''}` })).json();
      for (const j of page.data) assert.equal(j.kind, kind);
      seen.push(...page.data.map((j) => j.id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, all.filter((j) => j.kind === kind).map((j) => j.id));
  }
  const bad = await call({ method: 'GET', url: '/v1/jobs?kind=pretrain' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.param, 'query.kind');
});
