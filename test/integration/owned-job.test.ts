// Every route that takes a job id, read from the route table (so a route added later is covered),
// answers another tenant's job exactly as a missing one: the one owned-job guard.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { routeTable } from '../../services/api/src/access.ts';
import { ROOT } from '../support/stack.ts';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

const ADMIN = 'admin-secret-for-tests-0123456789';
let api: InjectApi;
let app: FastifyInstance;

before(async () => {
  api = await startInjectApi({ env: { MAKAM_ADMIN_KEY: ADMIN } });
  app = api.app;
});
after(async () => {
  await api?.close();
});

async function newKey(tenant: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/admin/keys', headers: { authorization: `Bearer ${ADMIN}` }, payload: { tenant, name: 'test' } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().key;
}

test("every route that takes a job id answers another tenant's job as a missing one", async () => {
  const [a, b] = [await newKey('owner'), await newKey('stranger')];
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'));
  const ds = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { authorization: `Bearer ${a}`, 'content-type': 'application/jsonl' }, payload: sample });
  const job = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${a}` }, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.json().id } });
  assert.equal(job.statusCode, 202, job.body);
  const missing = 'job_01m8g9p5j5q2s88fphw7b2hfpz';

  const perJob = routeTable(app).filter((r) => r.url.startsWith('/v1/jobs/:id') && r.access === 'tenant' && r.method !== 'HEAD');
  // GET, events (JSON and stream), metrics, trials, cancel, model and model files at least.
  assert.ok(perJob.length >= 8, JSON.stringify(perJob.map((r) => `${r.method} ${r.url}`)));
  for (const route of perJob) {
    const request = (id: string): InjectOptions => ({
      method: route.method as InjectOptions['method'],
      url: route.url.replace(':id', id).replace(':name', 'README.md'),
      headers: { authorization: `Bearer ${b}`, ...(route.constraints?.sse ? { accept: 'text/event-stream' } : {}) },
    });
    const theirs = await app.inject(request(job.json().id));
    const none = await app.inject(request(missing));
    const what = `${route.method} ${route.url}${route.constraints?.sse ? ' (event stream)' : ''}`;
    assert.equal(theirs.statusCode, 404, `${what}: ${theirs.body}`);
    assert.equal(none.statusCode, 404, `${what}: ${none.body}`);
    const strip = (body: string) => body.replaceAll(job.json().id, 'ID').replaceAll(missing, 'ID');
    assert.equal(strip(theirs.body), strip(none.body), what);
  }
  const own = await app.inject({ method: 'GET', url: `/v1/jobs/${job.json().id}`, headers: { authorization: `Bearer ${a}` } });
  assert.equal(own.json().status, 'queued', "the stranger's cancel changed nothing");
});
