// The API stopped with SIGTERM during an upload, and during a model download: each request in
// flight finishes, new requests are refused, and the process exits in bounded time.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobStore } from '@makam/shared/blob-store';
import { JobStore, type JobRecord } from '@makam/shared/job-store';
import { createRedis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { createKey } from '../support/keys.ts';
import { freePort } from '../support/ports.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';
import { ROOT } from '../support/stack.ts';
import { tally } from './tally.ts';

let redis: TestRedis | undefined;
const apis: ChildProcess[] = [];
/** A client that keeps its connections open a minute, as a proxy or load balancer does: an idle
 * keep-alive connection must not hold the API's exit up. */
const agent = new http.Agent({ keepAlive: true, timeout: 60_000 });

after(async () => {
  agent.destroy();
  for (const api of apis) api.kill('SIGKILL');
  await redis?.stop();
});

interface Api {
  proc: ChildProcess;
  port: number;
  key: string;
  prefix: string;
  storeDir: string;
}

/** The real API process on a free port, with a prefix and store of its own and one API key. */
async function startApi(): Promise<Api> {
  redis ??= await startRedis();
  const prefix = uniquePrefix();
  const port = await freePort();
  const storeDir = await mkdtemp(path.join(tmpdir(), 'makam-sigterm-'));
  const proc = spawn(process.execPath, ['services/api/src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_API_PORT: String(port), MAKAM_STORE_DIR: storeDir, MAKAM_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  apis.push(proc);
  const key = await createKey(redis.url, prefix, 'sigterm');
  for (let i = 0; ; i++) {
    if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)) break;
    if (i > 200) throw new Error('the API did not start');
    await sleep(100);
  }
  return { proc, port, key, prefix, storeDir };
}

/** A request made now on a fresh connection: its status, or 'refused' when no connection is taken. */
const freshRequest = (api: Api): Promise<number | 'refused'> =>
  fetch(`http://127.0.0.1:${api.port}/v1/jobs`, { headers: { authorization: `Bearer ${api.key}`, connection: 'close' } }).then((r) => r.status, () => 'refused' as const);

/** An upload whose body arrives in pieces, so the request is in flight for a while. */
function slowUpload(api: Api, body: Buffer, pieces: number, gapMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: '127.0.0.1', port: api.port, method: 'POST', path: '/v1/datasets', headers: { authorization: `Bearer ${api.key}`, 'content-type': 'application/jsonl', 'content-length': body.length } }, (res) => {
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
  const api = await startApi();
  const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'));
  const upload = slowUpload(api, sample, 20, 100); // about 2 s in flight
  await sleep(400);
  const exited = new Promise<number | null>((resolve) => api.proc.once('exit', (code) => resolve(code)));
  const t0 = Date.now();
  api.proc.kill('SIGTERM');
  tally.faults++;
  await sleep(200);
  const fresh = await freshRequest(api);
  assert.ok(fresh === 503 || fresh === 'refused', `a new request is refused (${fresh})`);
  const done = await upload;
  tally.submitted++;
  assert.equal(done.status, 201, done.body);
  assert.equal(JSON.parse(done.body).rows, 240, 'the whole upload was stored');
  tally.finished++;
  const code = await exited;
  const seconds = (Date.now() - t0) / 1000;
  console.log(`upload: the API exited ${seconds.toFixed(2)} s after SIGTERM`);
  assert.equal(code, 0);
  assert.ok(seconds < 15, `exited after ${seconds} s`);
});

test('SIGTERM lets a model download in flight finish whole, refuses new requests, and exits in bounded time', { timeout: 90_000 }, async () => {
  const api = await startApi();
  // Setup, not the thing tested: a succeeded job with a big model archive, written as a dispatcher
  // would (the file into the artifact store, the record through the job store).
  const size = 48 * 1024 * 1024;
  const bytes = randomBytes(size);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const jobId = newJobId();
  const file = new BlobStore(api.storeDir).artifactPath(jobId);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
  const conn = createRedis(redis!.url);
  try {
    const now = new Date().toISOString();
    const record: JobRecord = {
      id: jobId, object: 'job', tenant: 'sigterm', kind: 'finetune', status: 'succeeded', model: { family: 'tfidf' }, dataset: 'ds_01jd0000000000000000000000',
      validation_dataset: null, test_dataset: null, hyperparameters: {}, resource_class: 'cpu', estimate: null, progress: null, metrics: null, result: null,
      artifact: { sha256, size_bytes: size }, error: null, attempts: 1, worker: null, cancel_requested: false, created_at: now, started_at: now, finished_at: now, updated_at: now,
    };
    await new JobStore(conn, redisKeys(api.prefix)).create(record);
  } finally {
    conn.disconnect();
  }

  // The download, read by a client that stops reading after its first bytes: the rest waits in the
  // server's stream and the socket buffers, so the response is truly in flight at SIGTERM.
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ agent, host: '127.0.0.1', port: api.port, path: `/v1/jobs/${jobId}/artifacts/model`, headers: { authorization: `Bearer ${api.key}` } }, resolve).on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  const header = res.headers['x-makam-sha256'];
  assert.equal(header, sha256);
  const hash = createHash('sha256');
  let received = 0;
  const first = await new Promise<Buffer>((resolve) => res.once('data', resolve));
  res.pause();
  hash.update(first);
  received += first.length;
  await sleep(300);

  const exited = new Promise<number | null>((resolve) => api.proc.once('exit', (code) => resolve(code)));
  const t0 = Date.now();
  api.proc.kill('SIGTERM');
  tally.faults++;
  await sleep(300);
  const fresh = await freshRequest(api);
  assert.ok(fresh === 503 || fresh === 'refused', `a new request is refused (${fresh})`);
  assert.equal(api.proc.exitCode, null, 'the API waits for the download in flight');
  assert.ok(received < size / 2, `the download is still in flight at SIGTERM (${received} of ${size} bytes read)`);

  // Read the rest slowly: a pause every 4 MiB, about 2 s in all.
  const whole = new Promise<void>((resolve, reject) => {
    let nextPause = received + 4 * 1024 * 1024;
    res.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      if (received >= nextPause) {
        nextPause += 4 * 1024 * 1024;
        res.pause();
        setTimeout(() => res.resume(), 150);
      }
    });
    res.on('end', resolve);
    res.on('error', reject);
    res.on('aborted', () => reject(new Error(`the download was cut after ${received} bytes`)));
  });
  res.resume();
  await whole;
  const downloadedAfter = (Date.now() - t0) / 1000;
  tally.submitted++;
  assert.equal(received, size, 'every byte arrived');
  assert.equal(hash.digest('hex'), header, 'the bytes hash to X-Makam-Sha256');
  tally.finished++;
  const code = await exited;
  const seconds = (Date.now() - t0) / 1000;
  console.log(`download: ${size / 1024 / 1024} MiB finished whole ${downloadedAfter.toFixed(2)} s after SIGTERM; the API exited ${seconds.toFixed(2)} s after SIGTERM`);
  assert.equal(code, 0);
  assert.ok(seconds < 15, `exited after ${seconds} s`);
});
