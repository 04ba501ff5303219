// Issue 10, dataset ingest, the tune search check and the storage quota: each request here is one a
// hostile client could send; each must answer a coded 4xx promptly, keep /healthz responsive and
// never store more than the tenant's quota.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { startOpsApp, type OpsApp } from '../ops/app.ts';

interface ErrorBody {
  error: { code: string; message: string; param: string | null };
}

// The probe runs on its own thread: the API runs in this process, so a probe on this event loop
// would be frozen with it and never see the stall.
const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
let done = false, slowest = 0, probes = 0;
parentPort.on('message', () => { done = true; });
(async () => {
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(workerData.url + '/healthz');
    await res.arrayBuffer();
    slowest = Math.max(slowest, performance.now() - t0);
    probes++;
    await new Promise((r) => setTimeout(r, 20));
  }
  parentPort.postMessage({ slowest, probes });
})();`;

/** Polls /healthz from another thread while `work` runs; returns work's result and the slowest /healthz answer (ms). */
async function withProbe<T>(url: string, work: () => Promise<T>): Promise<{ result: T; slowestMs: number; probes: number }> {
  const worker = new Worker(PROBE, { eval: true, workerData: { url } });
  const figures = once(worker, 'message') as Promise<[{ slowest: number; probes: number }]>;
  await sleep(100); // the probe's first answers, before the work starts
  try {
    const result = await work();
    await sleep(50);
    worker.postMessage('stop');
    const [{ slowest, probes }] = await figures;
    return { result, slowestMs: slowest, probes };
  } finally {
    await worker.terminate();
  }
}

async function errorOf(res: Response): Promise<ErrorBody['error']> {
  const body = (await res.json()) as ErrorBody;
  assert.ok(body.error && typeof body.error.code === 'string' && typeof body.error.message === 'string' && 'param' in body.error, `not the error shape: ${JSON.stringify(body)}`);
  return body.error;
}

const tune = (space: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  kind: 'tune',
  model: { family: 'encoder', name: 'dbmdz/bert-base-turkish-cased' },
  dataset: 'ds_01jd0000000000000000000000',
  search: { space, sampler: 'grid', trials: 1000, ...extra },
});

describe('the tune search check', () => {
  let s: OpsApp;
  before(async () => {
    s = await startOpsApp();
  });
  after(async () => s.close());

  const post = (body: unknown) => s.api('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('a grid over wide int ranges is sized arithmetically: refused at once, /healthz never held', async () => {
    const space = {
      seed: { type: 'int', low: 0, high: 2 ** 31 - 1 },
      warmup_steps: { type: 'int', low: 0, high: 10_000_000 },
    };
    const { result: res, slowestMs } = await withProbe(s.url, () => post(tune(space)));
    assert.ok(slowestMs < 200, `/healthz took ${slowestMs.toFixed(0)} ms while the grid was checked`);
    assert.equal(res.status, 400);
    const err = await errorOf(res);
    assert.equal(err.code, 'invalid_search');
    assert.equal(err.param, 'search.space');
    assert.match(err.message, /2\.\d+e\+16 points/);
  });

  test('a grid larger than trials names its count', async () => {
    const res = await post(tune({ epochs: { type: 'int', low: 1, high: 30 } }, { trials: 10 }));
    assert.equal(res.status, 400);
    const err = await errorOf(res);
    assert.equal(err.param, 'search.trials');
    assert.match(err.message, /the grid has 30 points but trials is 10/);
  });

  for (const key of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
    test(`search-space key '${key}' is an unknown hyperparameter (400), not a 500`, async () => {
      // Written by hand so '__proto__' is an own key of the sent object, as a hostile client sends it.
      const body = `{"kind":"tune","model":{"family":"encoder","name":"dbmdz/bert-base-turkish-cased"},"dataset":"ds_01jd0000000000000000000000","search":{"space":{"${key}":{"type":"int","low":1,"high":3}},"sampler":"random","trials":3}}`;
      const res = await s.api('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(res.status, 400);
      const err = await errorOf(res);
      // Fastify's JSON parser may refuse '__proto__' itself; any other key must reach the search check.
      if (key !== '__proto__' || err.param !== null) {
        assert.equal(err.param, `search.space.${key}`);
        assert.match(err.message, /is not a hyperparameter/);
      }
    });
  }
});
