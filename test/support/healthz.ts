// Whether a request held the API's event loop, judged by /healthz: a probe on its own thread (the
// API may run in the test's process, where a probe on the same loop would freeze with it) asks
// /healthz every 20 ms while the work runs, and its slowest answer is compared with its slowest
// over a quiet second of the same run. A fixed limit fails on a loaded machine (a 20 MB upload
// held /healthz ~580 ms at load 6-8 on 2 cores, under 200 ms when quiet); against the quiet figure,
// a machine that is slow for both passes and a request that blocks the loop for a second does not.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
let done = false, slowest = 0, probes = 0;
parentPort.on('message', () => { done = true; });
(async () => {
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(workerData.url + '/healthz');
    await res.arrayBuffer();
    slowest = Math.max(slowest, performance.now() - t0);
    probes++;
    await new Promise((r) => setTimeout(r, 20));
  }
  parentPort.postMessage({ slowest, probes });
})();`;

export interface HealthzLatency {
  /** The slowest /healthz answer, in ms. */
  slowestMs: number;
  probes: number;
}

/** Polls /healthz from another thread while `work` runs: work's result and the slowest answer. */
export async function withHealthzProbe<T>(url: string, work: () => Promise<T>): Promise<{ result: T } & HealthzLatency> {
  const worker = new Worker(PROBE, { eval: true, workerData: { url } });
  const figures = once(worker, 'message') as Promise<[{ slowest: number; probes: number }]>;
  await sleep(100); // the probe's first answers, before the work starts
  try {
    const result = await work();
    await sleep(50);
    worker.postMessage('stop');
    const [{ slowest, probes }] = await figures;
    return { result, slowestMs: slowest, probes };
  } finally {
    await worker.terminate();
  }
}

/** The probe over `ms` of nothing: this run's /healthz latency on this machine at its present load. */
export async function healthzBaseline(url: string, ms = 1000): Promise<HealthzLatency> {
  const { slowestMs, probes } = await withHealthzProbe(url, () => sleep(ms));
  return { slowestMs, probes };
}

/** Ratio and allowance: generous, as a loaded machine slows a busy API more than an idle one. */
export const HEALTHZ_RATIO = 5;
export const HEALTHZ_ALLOWANCE_MS = 250;

/** The slowest /healthz a request may cause: HEALTHZ_RATIO × the quiet slowest + HEALTHZ_ALLOWANCE_MS. */
export const healthzLimitMs = (baseline: HealthzLatency): number => HEALTHZ_RATIO * baseline.slowestMs + HEALTHZ_ALLOWANCE_MS;

/** Fails when `during` (the probe while a request ran) is past healthzLimitMs of `baseline`. */
export function assertHealthzNotHeld(during: HealthzLatency, baseline: HealthzLatency, what: string): void {
  const limit = healthzLimitMs(baseline);
  assert.ok(
    during.slowestMs <= limit,
    `/healthz took ${during.slowestMs.toFixed(0)} ms during ${what}: more than ${limit.toFixed(0)} ms (${HEALTHZ_RATIO} × its quiet slowest ${baseline.slowestMs.toFixed(0)} ms + ${HEALTHZ_ALLOWANCE_MS} ms)`,
  );
}
