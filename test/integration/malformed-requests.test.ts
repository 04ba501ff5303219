// Property: thousands of malformed requests against the real app (real Redis) — none gets a 5xx,
// every refusal has the error shape, and none changes what is stored.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { ROOT } from '../support/stack.ts';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';
import { digest } from '../security/support.ts';

let api: InjectApi;
let app: FastifyInstance;
let key: string;
let datasetId: string;
let jobId: string;
let prefix: string;

before(async () => {
  api = await startInjectApi({
    tenant: 'fuzz',
    env: {
      MAKAM_RATE_LIMIT_PER_MINUTE: '1000000',
      MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '1000000', // else the fuzz's last few hundred bodies meet a 429, not the validation
      MAKAM_MAX_DATASET_BYTES: '4096',
    },
  });
  ({ app, key, prefix } = api);
  datasetId = (await api.upload({ rows: 20 })).id;
  jobId = (await api.call({ method: 'POST', url: '/v1/jobs', payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: datasetId } })).json().id;
});
after(async () => {
  await api?.close();
});

// Everything makam and BullMQ store under the test's prefix (rate-limit counters excluded).
const snapshot = (): Promise<string> => digest(app.redis, prefix);

const valid = () => ({ kind: 'finetune', model: { family: 'encoder', config: { model_type: 'bert', hidden_size: 32 } }, dataset: datasetId, hyperparameters: { epochs: 2 } });
const junk = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }));
const paths = ['kind', 'model', 'model.family', 'model.name', 'model.config', 'model.config.model_type', 'model.tokenizer', 'dataset', 'validation_dataset', 'test_dataset', 'resource_class', 'hyperparameters', 'hyperparameters.epochs', 'hyperparameters.batch_size', 'hyperparameters.learning_rate', 'hyperparameters.max_length', 'hyperparameters.class_weights', 'hyperparameters.focal_alpha', 'hyperparameters.lora_r', 'hyperparameters.truncation', 'surprise'];

/** A valid job body with one field replaced by junk, or removed: it must be refused. */
const mutatedJob = fc.tuple(fc.constantFrom(...paths), junk, fc.boolean()).map(([p, value, remove]) => {
  const body: Record<string, any> = valid();
  const parts = p.split('.');
  let obj = body;
  for (const part of parts.slice(0, -1)) {
    if (typeof obj[part] !== 'object' || obj[part] === null) obj[part] = {};
    obj = obj[part];
  }
  const last = parts.at(-1)!;
  if (remove && p !== 'surprise' && !p.startsWith('hyperparameters.') && !['validation_dataset', 'test_dataset', 'resource_class', 'model.name', 'model.tokenizer', 'hyperparameters'].includes(p)) delete obj[last];
  else obj[last] = value;
  return body;
});

test('the state digest sees a stored change', async () => {
  const before = await snapshot();
  await app.redis.hset(app.keys.job(jobId), 'worker', '"x"');
  assert.notEqual(await snapshot(), before);
});

test('malformed job submissions: never a 5xx, always the error shape, nothing stored', async () => {
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.oneof(mutatedJob, junk), async (body) => {
      const before = await snapshot();
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${JSON.stringify(body)}: ${res.body}`);
      if (res.statusCode === 202) return; // the mutation happened to be a legal value
      refused++;
      const { error } = res.json();
      assert.equal(typeof error.code, 'string');
      assert.equal(typeof error.message, 'string');
      assert.ok('param' in error);
      assert.equal(await snapshot(), before, `a refused submission changed stored state: ${JSON.stringify(body)}`);
    }),
    { numRuns: 1500, seed: 20261128 },
  );
  assert.ok(refused > 1000, `most generated bodies are malformed (${refused} refused)`);
});

test('a wrong choice names the field and every choice the contract gives it', async () => {
  const contract = JSON.parse(await readFile(path.join(ROOT, 'contracts/hyperparameters.json'), 'utf8')) as { hyperparameters: Array<{ name: string; type: string; choices?: string[] }> };
  const enums = contract.hyperparameters.filter((h) => h.type === 'enum');
  assert.ok(enums.length >= 8);
  for (const h of enums) {
    for (const wrong of ['not-a-choice', 3, ['x']]) {
      const body = { ...valid(), hyperparameters: { [h.name]: wrong } };
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
      assert.equal(res.statusCode, 400, `${h.name}=${JSON.stringify(wrong)}: ${res.body}`);
      const { error } = res.json();
      assert.equal(error.param, `hyperparameters.${h.name}`);
      for (const choice of h.choices!) assert.ok(error.message.includes(JSON.stringify(choice)), `${h.name}=${JSON.stringify(wrong)}: "${error.message}" does not offer ${choice}`);
    }
  }
  // A value of a branch's shape that fails inside it is refused where it fails.
  const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}` }, payload: { ...valid(), hyperparameters: { class_weights: { pop: -1 } } } });
  assert.equal(res.json().error.param, 'hyperparameters.class_weights.pop', res.body);
});

test('malformed uploads, ids, paths and queries: never a 5xx, nothing stored', async () => {
  const request = fc.oneof(
    fc.record({ kind: fc.constant('upload'), type: fc.constantFrom('application/jsonl', 'text/csv', 'application/json', 'text/plain', ''), body: fc.oneof(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.array(fc.dictionary(fc.constantFrom('text', 'label', 'x'), junk), { maxLength: 5 }).map((rows) => rows.map((r) => JSON.stringify(r)).join('\n'))) }),
    fc.record({ kind: fc.constant('get'), path: fc.oneof(fc.string(), fc.constantFrom('../../etc/passwd', '%2e%2e%2f', 'job_', jobId.slice(0, -1), `${jobId}x`, 'ds_ZZZ', '\u0000')), route: fc.constantFrom('/v1/jobs/', '/v1/datasets/', '/v1/jobs/x/metrics/', '/v1/jobs/') }),
    fc.record({ kind: fc.constant('query'), q: fc.dictionary(fc.constantFrom('limit', 'after', 'cursor', 'x'), fc.string(), { maxKeys: 3 }) }),
    fc.record({ kind: fc.constant('cancel'), id: fc.string() }),
  );
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const before = await snapshot();
      const auth = { authorization: `Bearer ${key}` };
      let res;
      if (r.kind === 'upload') res = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...auth, ...(r.type ? { 'content-type': r.type } : {}) }, payload: r.body });
      else if (r.kind === 'get') res = await app.inject({ method: 'GET', url: r.route + encodeURIComponent(r.path), headers: auth });
      else if (r.kind === 'query') res = await app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/events?${new URLSearchParams(r.q)}`, headers: auth });
      else res = await app.inject({ method: 'POST', url: `/v1/jobs/${encodeURIComponent(r.id)}/cancel`, headers: auth });
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${JSON.stringify(r)}: ${res.body}`);
      if (res.statusCode >= 400) assert.equal(await snapshot(), before, `a refused request changed stored state: ${JSON.stringify(r)}`);
    }),
    { numRuns: 1500, seed: 20261128 },
  );
});
