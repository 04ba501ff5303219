// The real API process overloaded: run with small event-loop delay and utilization thresholds
// (MAKAM_MAX_EVENT_LOOP_DELAY_MS, MAKAM_MAX_EVENT_LOOP_UTILIZATION) and flooded with large request bodies, it answers 503 early with
// the one error shape and a Retry-After instead of falling over; /healthz stays 200 (alive) while
// /readyz says 503 (send traffic elsewhere); once the flood stops it answers as before.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKey } from '../support/keys.ts';
import { freePort } from '../support/ports.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { ROOT } from '../support/stack.ts';
import { tally } from './tally.ts';

const RETRY_AFTER_S = 7;
const SAMPLE_MS = 200;
let redis: TestRedis;
let api: ChildProcess;
let port: number;
let key: string;
let stderr = '';
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

before(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix();
  port = await freePort();
  api = spawn(process.execPath, ['services/api/src/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      MAKAM_REDIS_PREFIX: prefix,
      MAKAM_QUEUE_PREFIX: `${prefix}-q`,
      MAKAM_API_PORT: String(port),
      MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-overload-')),
      MAKAM_LOG_LEVEL: 'warn',
      MAKAM_RATE_LIMIT_PER_MINUTE: '10000000', // the flood is about overload, not the rate limits
      MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '10000000',
      MAKAM_MAX_EVENT_LOOP_DELAY_MS: '40',
      // A fast machine may keep each delay under 40 ms; a flood still keeps the loop busy.
      MAKAM_MAX_EVENT_LOOP_UTILIZATION: '0.5',
      MAKAM_PRESSURE_SAMPLE_MS: String(SAMPLE_MS),
      MAKAM_PRESSURE_RETRY_AFTER_S: String(RETRY_AFTER_S),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  api.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  key = await createKey(redis.url, prefix, 'overload');
  for (let i = 0; ; i++) {
    if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)) break;
    if (i > 200) throw new Error('the API did not start');
    await sleep(100);
  }
});
after(async () => {
  agent.destroy();
  api?.kill('SIGKILL');
  await redis?.stop();
});

interface Answer {
  status: number | 'error';
  ms: number;
  retryAfter?: string;
  body: string;
}

function request(method: string, pathname: string, body?: Buffer): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${key}` };
    if (body) Object.assign(headers, { 'content-type': 'application/json', 'content-length': body.length });
    const req = http.request({ agent, host: '127.0.0.1', port, method, path: pathname, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, ms: performance.now() - t0, retryAfter: res.headers['retry-after'] as string | undefined, body: text }));
      res.on('error', (err) => resolve({ status: 'error', ms: performance.now() - t0, body: String(err) }));
    });
    req.on('error', (err) => resolve({ status: 'error', ms: performance.now() - t0, body: String(err) }));
    req.end(body);
  });
}

/** A job request of about 900 KB that the API must parse and validate to refuse (400). */
const heavyBody = Buffer.from(
  JSON.stringify({
    kind: 'finetune',
    model: { family: 'tfidf' },
    dataset: 'ds_01jd0000000000000000000000',
    hyperparameters: { epochs: 1 },
    ballast: Array.from({ length: 40_000 }, (_, i) => ({ i, s: 'yük' })),
  }),
);

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);

test('overloaded, the API answers 503 early with the error shape and Retry-After, keeps /healthz up, and recovers', { timeout: 120_000 }, async () => {
  assert.ok(heavyBody.length < 1024 * 1024);
  // Before: an ordinary request answers.
  assert.equal((await request('GET', '/v1/jobs')).status, 200);

  // The flood: 48 clients, each sending the heavy body again as soon as it has an answer, until
  // enough 503s have been seen (or 30 s have passed).
  tally.faults++;
  const answers: Answer[] = [];
  const probes: Array<{ healthz: Answer; readyz: Answer }> = [];
  let stop = false;
  const t0 = Date.now();
  const clients = Array.from({ length: 48 }, async () => {
    while (!stop) answers.push(await request('POST', '/v1/jobs', heavyBody));
  });
  let firstOverloadMs: number | null = null;
  while (Date.now() - t0 < 30_000) {
    await sleep(100);
    const overloaded = answers.filter((a) => a.status === 503).length;
    if (overloaded > 0 && firstOverloadMs === null) firstOverloadMs = Date.now() - t0;
    if (overloaded > 0 && probes.length < 3) {
      // While overloaded: liveness and readiness as a probe sees them.
      const [healthz, readyz] = await Promise.all([request('GET', '/healthz'), request('GET', '/readyz')]);
      probes.push({ healthz, readyz });
    }
    if (overloaded >= 50 && probes.length >= 3) break;
  }
  stop = true;
  await Promise.all(clients);
  const floodS = (Date.now() - t0) / 1000;

  const count = (s: Answer['status']) => answers.filter((a) => a.status === s).length;
  const overloaded = answers.filter((a) => a.status === 503);
  const refused = answers.filter((a) => a.status === 400);
  const other = answers.filter((a) => a.status !== 503 && a.status !== 400);
  console.log(
    `overload figures: ${answers.length} requests in ${floodS.toFixed(1)} s; 503 ${overloaded.length} (median ${median(overloaded.map((a) => a.ms)).toFixed(0)} ms), ` +
      `400 ${refused.length} (median ${median(refused.map((a) => a.ms)).toFixed(0)} ms), other ${other.length}; first 503 after ${firstOverloadMs} ms`,
  );
  assert.ok(overloaded.length > 0, `some requests are answered 503 (${JSON.stringify(answers.slice(0, 3))})`);
  assert.equal(other.length, 0, `every answer is 503 or the request's own 400, none a 5xx or a dropped connection: ${JSON.stringify(other.slice(0, 3))}`);
  assert.equal(count('error'), 0);
  for (const a of overloaded) {
    assert.equal(a.retryAfter, String(RETRY_AFTER_S));
    const body = JSON.parse(a.body);
    assert.deepEqual(Object.keys(body), ['error']);
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param']);
    assert.equal(body.error.code, 'overloaded');
    assert.equal(body.error.param, null);
    assert.match(body.error.message, /^the server is overloaded \((event(-loop delay [0-9]+ ms| loop blocked for over 200 ms), limit 40 ms|event-loop utilization [0-9.]+, limit 0\.5)\); retry in 7 s$/);
  }
  // Refused requests were the real thing: parsed and validated.
  if (refused.length) assert.equal(JSON.parse(refused[0]!.body).error.param, 'ballast');
  // While overloaded a liveness probe still passes; readiness, sampled at the same moment, may say either.
  assert.ok(probes.length > 0);
  for (const p of probes) assert.equal(p.healthz.status, 200, p.healthz.body);
  const readyz = probes.map((p) => p.readyz.status);
  console.log(`while overloaded: /healthz ${probes.map((p) => p.healthz.status).join(',')}, /readyz ${readyz.join(',')}`);
  for (const s of readyz) assert.ok(s === 200 || s === 503, `/readyz answers 200 or 503 (${s})`);
  assert.equal(api.exitCode, null, 'the API is still up');

  // After the flood: the next samples see an idle loop and requests answer as before.
  const t1 = Date.now();
  for (;;) {
    const [jobs, ready] = await Promise.all([request('GET', '/v1/jobs'), request('GET', '/readyz')]);
    if (jobs.status === 200 && ready.status === 200) break;
    assert.ok(Date.now() - t1 < 10_000, `the API recovers within 10 s (last: ${jobs.status} ${jobs.body})`);
    await sleep(50);
  }
  const recoveredMs = Date.now() - t1;
  console.log(`recovered ${recoveredMs} ms after the flood stopped`);
  // Steady again: a run of ordinary requests all answer 200.
  for (let i = 0; i < 20; i++) assert.equal((await request('GET', '/v1/jobs')).status, 200);
  assert.doesNotMatch(stderr, /"level":(50|60)/, 'no error was logged');
});
