// A dispatcher process through a Redis outage: every connection it makes has an 'error' listener
// that logs through pino at warn, at most one line per connection per interval, so the outage
// prints neither ioredis's "Unhandled error event" nor a line per reconnect attempt.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../support/ports.ts';
import { startOwnRedis, uniquePrefix, type OwnRedis } from '../support/redis.ts';
import { ROOT, eventually } from '../support/stack.ts';

const OUTAGE_MS = 5_000;
let redis: OwnRedis;
let dispatcher: ChildProcess;
let output = '';

before(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'makam-outage-'));
  redis = await startOwnRedis(dir);
  const prefix = uniquePrefix();
  dispatcher = spawn(process.execPath, ['services/dispatcher/src/main.ts'], {
    cwd: ROOT,
    // No worker answers on this port: the test is about Redis, and the dispatcher waits for workers.
    env: { ...process.env, REDIS_URL: redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: path.join(dir, 'store'), MAKAM_CLASS: 'cpu', MAKAM_WORKERS: `127.0.0.1:${await freePort()}`, MAKAM_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dispatcher.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  dispatcher.stderr!.on('data', (d: Buffer) => (output += d.toString()));
});
after(async () => {
  if (dispatcher && dispatcher.exitCode === null) {
    const exited = new Promise((r) => dispatcher.once('exit', r));
    dispatcher.kill('SIGKILL');
    await exited;
  }
  await redis?.stop();
});

test('a Redis outage is logged at warn, rate-limited per connection, with no "Unhandled error event"', { timeout: 60_000 }, async () => {
  await eventually('the dispatcher started', async () => output.includes('dispatcher started'), 20_000);
  await sleep(500);
  await redis.crashAndRestart(OUTAGE_MS);
  await sleep(1_000);
  assert.equal(dispatcher.exitCode, null, `the dispatcher lives through the outage:\n${output.slice(-2000)}`);
  assert.doesNotMatch(output, /Unhandled error event/, output.slice(-3000));
  const lines = output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; connection?: string });
  const warned = lines.filter((l) => l.msg === 'redis connection error; retrying');
  assert.ok(warned.length > 0, `the outage is logged:\n${output.slice(-3000)}`);
  assert.ok(warned.every((l) => l.level === 40), 'at warn');
  const perConnection = new Map<string, number>();
  for (const l of warned) perConnection.set(l.connection!, (perConnection.get(l.connection!) ?? 0) + 1);
  // ioredis retries every 0.2-2 s: unlimited, a connection would log several lines in the outage.
  for (const [connection, n] of perConnection) assert.ok(n <= 1, `${connection} logged ${n} lines in a ${OUTAGE_MS} ms outage`);
});
