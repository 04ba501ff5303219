// The API's front door against a real Redis: access decided on the matched route (a path spelled
// with %-escapes reaches the same route and the same check), limits per tenant, per address and
// for failed authentications, every refusal in the one error shape (the router's and the HTTP
// parser's included), JSON bodies that would fail later refused at once, and slow clients cut
// off while /healthz stays fast.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { ApiKeyStore } from '../../services/api/src/tenancy/api-keys.ts';
import { JobStore, queuedJob } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { routeTable } from '../../services/api/src/access.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const ADMIN = 'admin-secret-for-front-door-0123456789';
let redis: TestRedis;
let conn: Redis;

interface Built {
  app: FastifyInstance;
  prefix: string;
  keys: ApiKeyStore;
  key(tenant: string): Promise<string>;
}

async function build(env: Record<string, string | undefined> = {}): Promise<Built> {
  const prefix = uniquePrefix();
  const config = loadApiConfig({
    REDIS_URL: redis.url,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-front-door-')),
    MAKAM_RESOURCE_CLASSES: 'cpu',
    MAKAM_LOG_LEVEL: 'silent',
    MAKAM_WEBHOOK_DELIVERY: 'false',
    MAKAM_ADMIN_KEY: ADMIN,
    // A busy test machine is no overloaded API: no 503s from under-pressure here.
    MAKAM_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...env,
  } as Record<string, string>);
  const app = await buildApp(config);
  await app.ready();
  const keys = new ApiKeyStore(conn, prefix);
  return { app, prefix, keys, key: async (tenant) => (await keys.create(tenant, 'test')).key };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** The one error shape, with the code given. */
function refused(res: LightMyRequestResponse | { statusCode: number; body: string }, status: number, code?: string): { code: string; message: string; param: string | null } {
  assert.equal(res.statusCode, status, res.body);
  const body = JSON.parse(res.body) as { error: { code: string; message: string; param: string | null } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error), ['code', 'message', 'param']);
  if (code) assert.equal(body.error.code, code, res.body);
  return body.error;
}

before(async () => {
  redis = await startRedis();
  conn = createRedis(redis.url);
});
after(async () => {
  conn?.disconnect();
  await redis?.stop();
});

describe('access is decided on the matched route', () => {
  let b: Built;
  let acme: string;
  before(async () => {
    b = await build();
    acme = await b.key('acme');
  });
  after(async () => b.app.close());

  test('a percent-encoded path reaches the route and its check: no key minted, listed or used without credentials', async () => {
    const mint = await b.app.inject({ method: 'POST', url: '/%761/admin/keys', payload: { tenant: 'x' } });
    refused(mint, 401, 'unauthorized');
    assert.deepEqual(await b.keys.list('x'), [], 'no key was minted');
    refused(await b.app.inject({ method: 'GET', url: '/v1/%61dmin/keys', headers: bearer(acme) }), 401, 'unauthorized');
    refused(await b.app.inject({ method: 'GET', url: '/%761/jobs' }), 401, 'unauthorized');
    refused(await b.app.inject({ method: 'POST', url: '/%761/datasets', headers: { 'content-type': 'application/jsonl' }, payload: '{"text":"a","label":"b"}\n' }), 401, 'unauthorized');
    refused(await b.app.inject({ method: 'GET', url: '/%76%31/%6a%6f%62%73' }), 401, 'unauthorized');
    // The same paths with the right credentials reach the same routes.
    assert.equal((await b.app.inject({ method: 'GET', url: '/%761/jobs', headers: bearer(acme) })).statusCode, 200);
    assert.equal((await b.app.inject({ method: 'GET', url: '/v1/%61dmin/keys', headers: bearer(ADMIN) })).statusCode, 200);
  });

  test('every route declares or defaults its access; only the expected ones are public; each private one refuses a stranger', async () => {
    const table = routeTable(b.app);
    assert.ok(table.length > 20, `${table.length} routes`);
    const publicRoutes = new Set(table.filter((r) => r.access === 'public').map((r) => r.url));
    for (const url of publicRoutes) assert.match(url, /^\/(healthz|readyz|metrics|openapi\.json|docs(\/.*)?|dashboard(\/.*)?)?$/, `${url} is public`);
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) assert.ok(publicRoutes.has(url), `${url} is public`);
    assert.ok(table.some((r) => r.url === '/v1/admin/keys' && r.access === 'admin'));
    assert.ok(table.some((r) => r.url.startsWith('/admin/queues') && r.access === 'admin'));
    for (const r of table) if (r.url.startsWith('/v1/') && !r.url.startsWith('/v1/admin/')) assert.equal(r.access, 'tenant', `${r.method} ${r.url}`);
    let n = 0;
    for (const r of table.filter((x) => x.access !== 'public' && x.method !== 'HEAD')) {
      const url = r.url.replace(/:[A-Za-z]+/g, 'x').replace(/\*$/, 'x');
      const headers: Record<string, string> = r.constraints?.sse ? { accept: 'text/event-stream' } : {};
      // Each from an address of its own: a tenant key on an admin route is a failed authentication.
      const remoteAddress = `10.1.${n >> 8}.${n++ & 255}`;
      refused(await b.app.inject({ method: r.method as InjectOptions['method'], url, headers, remoteAddress }), 401, 'unauthorized');
      if (r.access === 'admin') refused(await b.app.inject({ method: r.method as InjectOptions['method'], url, headers: { ...headers, ...bearer(acme) }, remoteAddress }), 401, 'unauthorized');
    }
  });

  test('a route that declares no access is a tenant route (fail closed), wherever it lives', async () => {
    const prefix = uniquePrefix();
    const app = await buildApp(
      loadApiConfig({ REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-front-door-')), MAKAM_LOG_LEVEL: 'silent', MAKAM_WEBHOOK_DELIVERY: 'false', MAKAM_MAX_EVENT_LOOP_DELAY_MS: '0' }),
    );
    try {
      app.get('/internal/secret', async (request) => ({ tenant: request.tenant }));
      await app.ready();
      assert.equal(routeTable(app).find((r) => r.url === '/internal/secret')?.access, 'tenant');
      refused(await app.inject({ method: 'GET', url: '/internal/secret' }), 401, 'unauthorized');
      refused(await app.inject({ method: 'GET', url: '/internal/%73ecret' }), 401, 'unauthorized');
      const key = (await new ApiKeyStore(conn, prefix).create('acme', 'test')).key;
      assert.deepEqual((await app.inject({ method: 'GET', url: '/internal/secret', headers: bearer(key) })).json(), { tenant: 'acme' });
    } finally {
      await app.close();
    }
  });

  test('an unknown path answers 404 in the error shape, with or without a key', async () => {
    for (const headers of [{}, bearer(acme)]) {
      refused(await b.app.inject({ method: 'GET', url: '/v1/nothing-here', headers }), 404, 'route_not_found');
      refused(await b.app.inject({ method: 'DELETE', url: '/v1/jobs', headers }), 404, 'route_not_found');
    }
  });

  test('without MAKAM_ADMIN_KEY there are no admin routes: a minting request finds nothing', async () => {
    const bare = await build({ MAKAM_ADMIN_KEY: undefined });
    try {
      for (const url of ['/v1/admin/keys', '/%761/admin/keys', '/v1/%61dmin/keys']) {
        refused(await bare.app.inject({ method: 'POST', url, payload: { tenant: 'x' } }), 404, 'route_not_found');
      }
      assert.deepEqual(await bare.keys.list(), []);
      assert.equal(routeTable(bare.app).filter((r) => r.access === 'admin').length, 0);
    } finally {
      await bare.app.close();
    }
  });
});

describe('rate limits', () => {
  test('a tenant is limited with all its keys together, and %-encoded paths count too', async () => {
    const b = await build({ MAKAM_RATE_LIMIT_PER_MINUTE: '5' });
    try {
      const keys = [await b.key('three'), await b.key('three'), await b.key('three')];
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) codes.push((await b.app.inject({ method: 'GET', url: i % 2 ? '/%761/jobs' : '/v1/jobs', headers: bearer(keys[i % 3]!) })).statusCode);
      assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
      const res = await b.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(keys[2]!) });
      assert.match(refused(res, 429, 'rate_limited').message, /more than 5 requests a minute for tenant three/);
      // What is left of the minute's window that began with the first request, in whole seconds.
      const retryAfter = Number(res.headers['retry-after']);
      assert.ok(retryAfter >= 50 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assert.equal((await b.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(await b.key('other')) })).statusCode, 200, 'another tenant is not held up');
    } finally {
      await b.app.close();
    }
  });

  test('requests racing for the last places: exactly the limit passes', async () => {
    const b = await build({ MAKAM_RATE_LIMIT_PER_MINUTE: '5' });
    try {
      const key = await b.key('racer');
      const codes = (await Promise.all(Array.from({ length: 30 }, () => b.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key) })))).map((r) => r.statusCode);
      assert.equal(codes.filter((c) => c === 200).length, 5, codes.join(','));
      assert.equal(codes.filter((c) => c === 429).length, 25);
    } finally {
      await b.app.close();
    }
  });

  test('one address is limited whatever keys it uses; another address is not', async () => {
    const b = await build({ MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '4' });
    try {
      const keys = [await b.key('t1'), await b.key('t2')];
      const from = (ip: string, key: string) => b.app.inject({ method: 'GET', url: '/v1/jobs', headers: bearer(key), remoteAddress: ip });
      const codes: number[] = [];
      for (let i = 0; i < 6; i++) codes.push((await from('203.0.113.7', keys[i % 2]!)).statusCode);
      assert.deepEqual(codes, [200, 200, 200, 200, 429, 429]);
      const limited = await from('203.0.113.7', keys[0]!);
      assert.match(refused(limited, 429, 'rate_limited').message, /from this address/);
      assert.ok(Number(limited.headers['retry-after']) >= 50 && Number(limited.headers['retry-after']) <= 60, `Retry-After ${limited.headers['retry-after']}`);
      assert.equal((await from('203.0.113.8', keys[0]!)).statusCode, 200);
      // Public routes are not counted: health checks keep answering.
      assert.equal((await b.app.inject({ method: 'GET', url: '/healthz', remoteAddress: '203.0.113.7' })).statusCode, 200);
    } finally {
      await b.app.close();
    }
  });

  test('failed authentications are counted per address: past the limit even a good key from there waits', async () => {
    const b = await build({ MAKAM_AUTH_FAILURES_PER_MINUTE: '3' });
    try {
      const good = await b.key('victim');
      const from = (ip: string, headers: Record<string, string>, url = '/v1/jobs') => b.app.inject({ method: 'GET', url, headers, remoteAddress: ip });
      for (let i = 0; i < 3; i++) refused(await from('198.51.100.1', bearer(`mk_guess${i}`)), 401, 'unauthorized');
      const wait = await from('198.51.100.1', bearer('mk_guess-again'));
      assert.equal(refused(wait, 429, 'rate_limited').param, 'Authorization');
      assert.ok(Number(wait.headers['retry-after']) >= 50 && Number(wait.headers['retry-after']) <= 60, `Retry-After ${wait.headers['retry-after']}`);
      refused(await from('198.51.100.1', bearer(good)), 429, 'rate_limited');
      refused(await from('198.51.100.1', bearer('wrong-admin-key-000000'), '/v1/admin/keys'), 429, 'rate_limited');
      assert.equal((await from('198.51.100.2', bearer(good))).statusCode, 200, 'another address is not held up');
      // A request with no key at all is no guess.
      for (let i = 0; i < 5; i++) refused(await from('198.51.100.3', {}), 401, 'unauthorized');
      assert.equal((await from('198.51.100.3', bearer(good))).statusCode, 200);
    } finally {
      await b.app.close();
    }
  });
});

describe('answers in the one error shape', () => {
  let b: Built;
  let key: string;
  let jobId: string;
  before(async () => {
    b = await build();
    key = await b.key('acme');
    const jobs = new JobStore(conn, redisKeys(b.prefix));
    const record = queuedJob({
      id: newJobId(),
      tenant: 'acme',
      kind: 'finetune',
      model: { family: 'tfidf' },
      dataset: 'ds_01jd0000000000000000000000',
      validation_dataset: null,
      test_dataset: null,
      hyperparameters: {},
      resource_class: 'cpu',
      estimate: null,
    });
    await jobs.create(record);
    jobId = record.id;
  });
  after(async () => b.app.close());

  test('a path parameter over 100 characters: 414 naming the path', async () => {
    const e = refused(await b.app.inject({ method: 'GET', url: `/v1/jobs/${'j'.repeat(150)}`, headers: bearer(key) }), 414, 'path_too_long');
    assert.equal(e.param, 'path');
    refused(await b.app.inject({ method: 'GET', url: '/v1/jobs/%zz' }), 400, 'invalid_path');
  });

  test('an event cursor beyond two unsigned 64-bit integers: 400 naming the field, in the list and the live stream', async () => {
    for (const after of ['99999999999999999999999-0', '0-18446744073709551616', '18446744073709551616-0', '18446744073709551615-18446744073709551615']) {
      const list = refused(await b.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/events?after=${after}`, headers: bearer(key) }), 400, 'invalid_request');
      assert.equal(list.param, 'query.after');
      assert.match(list.message, /two unsigned 64-bit integers/);
      const live = refused(await b.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/events`, headers: { ...bearer(key), accept: 'text/event-stream', 'last-event-id': after } }), 400, 'invalid_request');
      assert.equal(live.param, 'Last-Event-ID');
    }
    for (const after of ['18446744073709551615-18446744073709551614', '0-0', '1700000000000-3']) {
      const res = await b.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}/events?after=${after}`, headers: bearer(key) });
      assert.equal(res.statusCode, 200, `${after}: ${res.body}`);
    }
  });

  test("Fastify's own refusals: bad JSON, empty JSON, a media type, a body too large", async () => {
    const post = (payload: string, headers: Record<string, string> = {}) =>
      b.app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...bearer(key), 'content-type': 'application/json', ...headers }, payload });
    assert.equal(refused(await post('{"kind": '), 400, 'invalid_json').param, 'body');
    assert.equal(refused(await post(''), 400, 'invalid_json').param, 'body');
    assert.equal(refused(await post('{}', { 'content-type': 'application/xml' }), 415, 'unsupported_media_type').param, 'Content-Type');
    assert.equal(refused(await post(JSON.stringify({ kind: 'x'.repeat(2 * 1024 * 1024) })), 413, 'body_too_large').param, 'body');
    // The static files' refusals (swagger-ui's, always there): coded, naming what to fix.
    assert.equal(refused(await b.app.inject({ method: 'GET', url: `/docs/static/${'a'.repeat(5000)}` }), 403, 'forbidden').param, 'path');
    assert.equal(refused(await b.app.inject({ method: 'GET', url: '/docs/static/swagger-ui.css', headers: { range: 'bytes=999999999-' } }), 416, 'range_not_satisfiable').param, 'Range');
  });

  test('the HTTP parser refusals (a bad request line, headers too large) answer in the shape too', async () => {
    await b.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = b.app.server.address() as net.AddressInfo;
    const raw = (text: string) =>
      new Promise<{ statusCode: number; body: string }>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.write(text));
        let data = '';
        s.on('data', (d) => (data += d.toString()));
        s.on('error', reject);
        s.on('close', () => resolve({ statusCode: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
      });
    refused(await raw('NOT HTTP AT ALL\r\n\r\n'), 400, 'invalid_request');
    refused(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'headers_too_large');
  });
});

describe('JSON bodies are taken as sent', () => {
  let b: Built;
  let key: string;
  before(async () => {
    b = await build();
    key = await b.key('acme');
  });
  after(async () => b.app.close());
  const job = (hyperparameters: string) => `{"kind":"finetune","model":{"family":"tfidf"},"dataset":"ds_01jd0000000000000000000000","hyperparameters":${hyperparameters}}`;
  const post = (payload: string) => b.app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...bearer(key), 'content-type': 'application/json' }, payload });

  test('numbers sent as strings are not numbers ("Infinity", "1e400", "5e-5"), even where a number has no bounds', async () => {
    // A search range's low and high are any numbers: coerced, "Infinity" passed as Infinity.
    const tune = (low: string) => `{"kind":"tune","model":{"family":"scratch"},"dataset":"ds_01jd0000000000000000000000","search":{"space":{"learning_rate":{"type":"float","low":${low},"high":0.1}}}}`;
    for (const v of ['"Infinity"', '"-Infinity"', '"1e400"', '"5e-5"']) {
      const e = refused(await post(tune(v)), 400, 'invalid_request');
      assert.equal(e.param, 'search.space.learning_rate.low', v);
      assert.equal(refused(await post(job(`{"learning_rate":${v}}`)), 400, 'invalid_request').param, 'hyperparameters.learning_rate', v);
    }
    // Querystrings are still read as their types.
    assert.equal((await b.app.inject({ method: 'GET', url: '/v1/jobs?limit=5', headers: bearer(key) })).statusCode, 200);
  });

  test('a number JSON cannot hold (1e400 parses as Infinity) is refused naming its path', async () => {
    for (const v of ['1e400', '-1e400']) {
      const e = refused(await post(job(`{"learning_rate":${v}}`)), 400, 'invalid_number');
      assert.equal(e.param, 'hyperparameters.learning_rate');
    }
    const nested = refused(await post('{"kind":"finetune","model":{"family":"encoder","config":{"layers":[1,2,1e999]}},"dataset":"ds_01jd0000000000000000000000"}'), 400, 'invalid_number');
    assert.equal(nested.param, 'model.config.layers.2');
  });

  test('deep nesting answers 400, not 500 or a stack overflow', async () => {
    const depth = 100_000;
    const res = await post(job(`{"class_weights":${'['.repeat(depth)}${']'.repeat(depth)}}`));
    assert.equal(refused(res, 400, 'too_deep').param, 'body');
    refused(await post(`{"kind":"finetune","model":{"family":"encoder","config":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}`), 400, 'too_deep');
  });

  test('prototype keys are refused and pollute nothing', async () => {
    for (const [body, param] of [
      ['{"__proto__":{"polluted":true},"kind":"finetune"}', '__proto__'],
      ['{"kind":"finetune","model":{"family":"encoder","config":{"constructor":{"prototype":{"polluted":true}}}}}', 'model.config.constructor'],
      ['{"kind":"finetune","hyperparameters":{"prototype":1}}', 'hyperparameters.prototype'],
    ] as const) {
      assert.equal(refused(await post(body), 400, 'forbidden_key').param, param);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('slow clients', () => {
  test('a header deadline longer than the request deadline stops the start, naming both settings', async () => {
    await assert.rejects(build({ MAKAM_HEADERS_TIMEOUT_MS: '5000', MAKAM_REQUEST_TIMEOUT_MS: '1000' }), /MAKAM_HEADERS_TIMEOUT_MS \(5000\) must not exceed MAKAM_REQUEST_TIMEOUT_MS \(1000\)/);
  });

  test('clients trickling a body or headers are cut with 408 in the shape within the limit; /healthz stays fast', async () => {
    const window = 400;
    const b = await build({ MAKAM_MIN_BODY_BYTES_PER_S: '100', MAKAM_BODY_RATE_WINDOW_MS: String(window), MAKAM_HEADERS_TIMEOUT_MS: '800', MAKAM_REQUEST_TIMEOUT_MS: '5000', MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '10000' });
    const key = await b.key('slow');
    await b.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = b.app.server.address() as net.AddressInfo;
    // Warm: the first fetch of a process loads its HTTP client.
    for (let i = 0; i < 3; i++) await fetch(`http://127.0.0.1:${port}/healthz`);
    const started = Date.now();
    /** A client that sends `head`, then a byte every 100 ms forever; resolves when the server closes it. */
    const trickle = (head: string) =>
      new Promise<{ ms: number; response: string }>((resolve) => {
        let response = '';
        const s = net.connect(port, '127.0.0.1', () => s.write(head));
        const drip = setInterval(() => s.writable && s.write('x'), 100);
        s.on('data', (d) => (response += d.toString()));
        s.on('error', () => {});
        s.on('close', () => {
          clearInterval(drip);
          resolve({ ms: Date.now() - started, response });
        });
      });
    const N = 50;
    let silentClosed = 0;
    const bodies = Array.from({ length: N }, () =>
      trickle(`POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/jsonl\r\nContent-Length: 100000\r\n\r\n`),
    );
    const headers = Array.from({ length: N }, () => trickle('GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: '));
    // Connections that send nothing at all are held to the same header deadline (Node counts from the connection).
    const silent = Array.from({ length: N }, () =>
      new Promise<{ ms: number; response: string }>((resolve) => {
        let response = '';
        const s = net.connect(port, '127.0.0.1');
        s.on('data', (d) => (response += d.toString()));
        s.on('error', () => {});
        s.on('close', () => (silentClosed++, resolve({ ms: Date.now() - started, response })));
      }),
    );
    const probes: number[] = [];
    let done = false;
    const all = Promise.all([...bodies, ...headers]);
    const quiet = Promise.all(silent);
    void Promise.all([all, quiet]).finally(() => (done = true));
    while (!done && Date.now() - started < 8000) {
      const t = performance.now();
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      probes.push(Math.round(performance.now() - t));
      await new Promise((r) => setTimeout(r, 50));
    }
    const results = await Promise.race([all, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
    const slowest = Math.max(...probes);
    try {
      assert.ok(results, `every trickling client was closed within 8 s (${Date.now() - started} ms)`);
      const bodyCuts = results.slice(0, N);
      const headerCuts = results.slice(N);
      for (const r of bodyCuts) {
        assert.ok(r.ms < 3 * window + 1000, `a body trickle was cut after ${r.ms} ms`);
        assert.match(r.response, /^HTTP\/1\.1 408/);
        refused({ statusCode: 408, body: r.response.slice(r.response.indexOf('\r\n\r\n') + 4) }, 408, 'request_timeout');
      }
      for (const r of headerCuts) {
        assert.ok(r.ms < 800 + 2000, `a header trickle was cut after ${r.ms} ms`);
        assert.match(r.response, /^HTTP\/1\.1 408/);
        refused({ statusCode: 408, body: r.response.slice(r.response.indexOf('\r\n\r\n') + 4) }, 408, 'request_timeout');
      }
      const silentCuts = await Promise.race([quiet, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
      assert.ok(silentCuts, `every silent connection was closed within 8 s (${silentClosed} of ${N})`);
      for (const r of silentCuts) {
        assert.ok(r.ms < 800 + 2000, `a silent connection was closed after ${r.ms} ms`);
        refused({ statusCode: Number(r.response.slice(9, 12)), body: r.response.slice(r.response.indexOf('\r\n\r\n') + 4) }, 408, 'request_timeout');
      }
      assert.ok(slowest < 200, `slowest /healthz ${slowest} ms (probes: ${probes.join(' ')})`);
      console.log(`# slow clients: ${N} body + ${N} header trickles + ${N} silent connections closed in ${Math.max(...results.map((r) => r.ms), ...silentCuts.map((r) => r.ms))} ms; ${probes.length} /healthz probes, slowest ${slowest} ms`);
    } finally {
      b.app.server.closeAllConnections();
      await b.app.close();
    }
  });
});
