// The API stopped with SIGTERM during an upload and a download: both finish, new requests are
// refused, and the process exits in bounded time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKey } from '../support/keys.ts';
import { freePort } from '../support/ports.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { ROOT } from '../support/stack.ts';
import { tally } from './tally.ts';

let redis: TestRedis;
let api: ChildProcess;
let port: number;
let key: string;

before(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix();
  port = await freePort();
  api = spawn(process.execPath, ['services/api/src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_API_PORT: String(port), MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-sigterm-')), MAKAM_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  key = await createKey(redis.url, prefix, 'sigterm');
  for (let i = 0; ; i++) {
    if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)) break;
    if (i > 200) throw new Error('the API did not start');
    await sleep(100);
  }
});
after(async () => {
  api?.kill('SIGKILL');
  await redis?.stop();
});

/** An upload whose body arrives in pieces, so the request is in flight for a while. */
function slowUpload(body: Buffer, pieces: number, gapMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/datasets', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/jsonl', 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    void (async () => {
      const size = Math.ceil(body.length / pieces);
      for (let i = 0; i < body.length; i += size) {
        req.write(body.subarray(i, i + size));
        await sleep(gapMs);
      }
      req.end();
    })();
  });
}

test('SIGTERM lets the upload in flight finish, refuses new requests, and exits in bounded time', { timeout: 60_000 }, async () => {
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'));
  const upload = slowUpload(sample, 20, 100); // about 2 s in flight
  await sleep(400);
  const exited = new Promise<number | null>((resolve) => api.once('exit', (code) => resolve(code)));
  const t0 = Date.now();
  api.kill('SIGTERM');
  tally.faults++;
  await sleep(200);
  const fresh = await fetch(`http://127.0.0.1:${port}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status, () => 'refused');
  assert.ok(fresh === 503 || fresh === 'refused', `a new request is refused (${fresh})`);
  const done = await upload;
  tally.submitted++;
  assert.equal(done.status, 201, done.body);
  assert.equal(JSON.parse(done.body).rows, 240, 'the whole upload was stored');
  tally.finished++;
  const code = await exited;
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(code, 0);
  assert.ok(seconds < 15, `exited after ${seconds} s`);
});
