// The overload guard (under-pressure, app.ts) against start-up: its event-loop samples begin when it
// registers, so the first ones after start measure start-up's own synchronous work (schemas,
// plugins), which on a loaded host blocks the loop for a whole interval. A fresh API must not read
// that as overload; a loop blocked after start still is.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startInjectApi, type InjectApi } from '../support/api-app.ts';

const SAMPLE_MS = 500;
let api: InjectApi | undefined;

after(async () => {
  await api?.close();
});

const block = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

test('a loop blocked during start-up is no overload once ready; one blocked after start is', { timeout: 30_000 }, async () => {
  api = await startInjectApi({ env: { MAKAM_LOG_LEVEL: 'silent', MAKAM_PRESSURE_SAMPLE_MS: String(SAMPLE_MS), MAKAM_MAX_EVENT_LOOP_DELAY_MS: '50' } });
  const { app } = api;
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
