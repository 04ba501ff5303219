// ReplicaWaits (services/api/src/replication.ts), the API's WAIT for replicas under
// MAKAM_REDIS_WAIT_REPLICAS, against a real primary and replica (support/sentinel.ts): a WAIT covers
// a write another connection made, and simultaneous waits share one WAIT on the waiter's own connection.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRedis, type Redis } from '@makam/shared/redis';
import { ReplicaWaits } from '../../services/api/src/replication.ts';
import { startSentinelRedis, type SentinelRedis } from '../support/sentinel.ts';

const settings = { MAKAM_REDIS_WAIT_REPLICAS: 1, MAKAM_REDIS_WAIT_MS: 300 };
let dir: string;
let redis: SentinelRedis;
let writer: Redis;
let waiterConn: Redis;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-waits-'));
  redis = await startSentinelRedis(dir, { maxLagS: 10 });
  writer = createRedis(redis.settings);
  waiterConn = createRedis(redis.settings);
});
after(async () => {
  writer?.disconnect();
  waiterConn?.disconnect();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const waitCalls = async (conn: Redis): Promise<number> => Number(/cmdstat_wait:calls=(\d+)/.exec(await conn.info('commandstats'))?.[1] ?? 0);

test("a wait covers another connection's write, and waits that arrive together share one WAIT", { timeout: 60_000 }, async () => {
  const waits = new ReplicaWaits(waiterConn, 'waits-test:marker', settings);
  await writer.set('waits-test:a', '1');
  assert.equal(await waits.acked(), 1, 'the replica has the write');

  const [, replicaPort] = redis.ports.data as [number, number];
  redis.pause(replicaPort);
  try {
    // Each round writes its marker first, so its WAIT reaches past every write already acknowledged.
    await writer.set('waits-test:b', '2');
    assert.equal(await waits.acked(), 0, "the paused replica lacks the other connection's write");

    const before = await waitCalls(writer);
    const together = await Promise.all(Array.from({ length: 20 }, () => waits.acked()));
    assert.deepEqual(new Set(together), new Set([0]));
    assert.equal((await waitCalls(writer)) - before, 1, 'twenty simultaneous waits, one WAIT');

    // One that arrives while a round is out joins the next: its write may postdate that round's marker.
    const first = waits.acked();
    await new Promise((r) => setTimeout(r, 50));
    const second = waits.acked();
    assert.notEqual(first, second);
    await Promise.all([first, second]);
    assert.equal((await waitCalls(writer)) - before, 3);
  } finally {
    redis.resume(replicaPort);
  }
  await writer.set('waits-test:c', '3');
  assert.equal(await waits.acked(), 1, 'the replica caught up');
});
