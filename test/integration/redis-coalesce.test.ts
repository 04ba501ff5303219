// createRedis's coalesceWrites (the API's submission connection): the MULTIs sent in one tick leave
// in one socket write, each still applied whole and answered in order, and again after a reconnect.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { createRedis, type Redis } from '@makam/shared/redis';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

let server: TestRedis;

before(async () => {
  server = await startRedis();
});
after(async () => {
  await server.stop();
});

/** How many writes reach the socket's handle (one per write syscall) while `fn` runs. */
async function socketWrites(conn: Redis, fn: () => Promise<unknown>): Promise<number> {
  const socket = conn.stream as Socket & { _writeGeneric(...args: unknown[]): unknown };
  const original = socket._writeGeneric;
  let writes = 0;
  socket._writeGeneric = function (...args: unknown[]) {
    writes++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    socket._writeGeneric = original;
  }
  return writes;
}

/** Ten MULTIs from one tick, each setting its key and counting; the replies of each. */
const tenMultis = (conn: Redis, prefix: string) =>
  Promise.all(Array.from({ length: 10 }, (_, i) => conn.multi().set(`${prefix}:k${i}`, String(i)).incr(`${prefix}:n`).exec()));

for (const coalesceWrites of [true, false]) {
  test(`coalesceWrites ${coalesceWrites}: ten MULTIs of one tick go out in ${coalesceWrites ? 'one write' : 'ten writes'}, each applied whole, in order`, async () => {
    const conn = createRedis(server.url, { coalesceWrites });
    try {
      await conn.ping();
      for (let round = 0; round < 2; round++) {
        const prefix = uniquePrefix();
        let replies: Awaited<ReturnType<typeof tenMultis>> = [];
        const writes = await socketWrites(conn, async () => {
          replies = await tenMultis(conn, prefix);
        });
        assert.equal(writes, coalesceWrites ? 1 : 10);
        assert.deepEqual(replies.map((r) => r!.map(([err, value]) => [err, value])), Array.from({ length: 10 }, (_, i) => [[null, 'OK'], [null, i + 1]]));
        assert.deepEqual(await conn.mget(Array.from({ length: 10 }, (_, i) => `${prefix}:k${i}`)), Array.from({ length: 10 }, (_, i) => String(i)));
        // A new socket after a reconnect is coalesced too.
        conn.disconnect(true);
        await new Promise((resolve) => conn.once('ready', resolve));
      }
    } finally {
      conn.disconnect();
    }
  });
}
