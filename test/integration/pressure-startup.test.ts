// The overload guard (under-pressure, app.ts) against start-up: its event-loop samples begin when it
// registers, so the first ones after start measure start-up's own synchronous work (schemas,
// plugins), which on a loaded host blocks the loop for a whole interval. A fresh API must not read
// that as overload; a loop blocked after start still is.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const SAMPLE_MS = 500;
let redis: TestRedis;
let app: FastifyInstance;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await app?.close();
  await redis?.stop();
});

const block = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('a loop blocked during start-up is no overload once ready; one blocked after start is', { timeout: 30_000 }, async () => {
  const prefix = uniquePrefix();
  const config = loadApiConfig({
    REDIS_URL: redis.url,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-pressure-')),
    MAKAM_LOG_LEVEL: 'silent',
    MAKAM_PRESSURE_SAMPLE_MS: String(SAMPLE_MS),
    MAKAM_MAX_EVENT_LOOP_DELAY_MS: '50',
  });
  app = await buildApp(config);
  block(3 * SAMPLE_MS); // start-up's synchronous work on a slow host: the guard's first sample sees no tick
  await sleep(5); // its timer fires now, late
  await app.ready();
  const fresh = await app.inject({ method: 'GET', url: '/v1/jobs' });
  assert.equal(fresh.statusCode, 401, `just ready, the request is served (authentication answers), not refused: ${fresh.body}`);

  await sleep(3 * SAMPLE_MS); // past start-up's samples
  // Busy for whole sample intervals, yielding only between 200 ms stretches: every tick the guard
  // samples is late by about that much. (One long block is one late tick among many punctual ones,
  // which a mean dilutes, or none at all, by where the block falls in the interval.)
  const end = performance.now() + 3 * SAMPLE_MS;
  while (performance.now() < end) {
    block(200);
    await new Promise((r) => setImmediate(r));
  }
  const busy = await app.inject({ method: 'GET', url: '/v1/jobs' });
  assert.equal(busy.statusCode, 503, `blocked after start, the guard refuses: ${busy.body}`);
  assert.equal(busy.json().error.code, 'overloaded');
});
