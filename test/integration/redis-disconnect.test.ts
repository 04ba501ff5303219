// createRedis's connections settle every command on disconnect(), also while they wait to
// reconnect: ioredis 5.11 leaves those queued for the reconnect pending for ever there, and a
// blocking read loop awaiting one kept the API's close from ending (seen after a NOREPLICAS spell
// in no-replicas.test.ts: the webhook notifier's connection was reconnecting when the app closed).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedis } from '@makam/shared/redis';
import { startOwnRedis, type OwnRedis } from '../support/redis.ts';

let dir: string;
let redis: OwnRedis;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-disconnect-'));
  redis = await startOwnRedis(dir);
});
after(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('disconnect() while reconnecting rejects the commands waiting for the reconnect', { timeout: 30_000 }, async () => {
  const conn = createRedis(redis.url, { blocking: true }); // retries for ever: only the disconnect can end its commands
  conn.on('error', () => {});
  await conn.ping();
  await redis.stop();
  for (let i = 0; conn.status !== 'reconnecting'; i++) {
    assert.ok(i < 100, `the connection did not start reconnecting (${conn.status})`);
    await sleep(50);
  }
  const waiting = conn.get('disconnect-test').then(() => 'answered', (err: Error) => err.message);
  conn.disconnect();
  const outcome = await Promise.race([waiting, sleep(2000).then(() => 'still pending 2 s after disconnect()')]);
  assert.equal(outcome, 'Connection is closed.');
  assert.equal(conn.status, 'end');
});
