// Prometheus /metrics scraped after real activity: requests through the API, a job queued on its
// class's BullMQ queue, job records that ended, and what dispatchers publish (worker capabilities,
// ingest lag) written through the same Telemetry class they use.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Telemetry, emptyLag, observeLag } from '@makam/shared/telemetry';
import { ROOT } from '../support/stack.ts';
import { startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;

before(async () => {
  ops = await startOpsApp();
});
after(async () => {
  await ops?.close();
});

/** The value of one sample line, e.g. sample(text, 'makam_jobs{status="queued"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/metrics reports HTTP latency, queue depths, jobs by status and durations, workers and ingest lag', async () => {
  // Activity through the API: a dataset, a job queued on the cpu queue, a few reads and a 404.
  const upload = await ops.api('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')) });
  assert.equal(upload.status, 201);
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = ((await upload.json()) as { id: string }).id;
  request.resource_class = 'cpu';
  const submitted = await ops.api('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  assert.equal(submitted.status, 202);
  const queued = (await submitted.json()) as { id: string; resource_class: string };
  assert.equal(queued.resource_class, 'cpu');
  for (let i = 0; i < 3; i++) assert.equal((await ops.api(`/v1/jobs/${queued.id}`)).status, 200);
  assert.equal((await ops.api('/v1/jobs/job_01jd0000000000000000000000')).status, 404);

  // Jobs that ran and ended, as a dispatcher leaves them.
  const t0 = Date.now() - 600_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  for (const [status, seconds] of [['succeeded', 45], ['succeeded', 400], ['failed', 20]] as const) {
    const job = await ops.job({ started_at: iso(t0) });
    await ops.jobs.transition(job.id, 'running', { attempts: 1, started_at: iso(t0) });
    await ops.jobs.transition(job.id, status, { finished_at: iso(t0 + seconds * 1000) });
  }
  // What a dispatcher of class cpu publishes.
  const telemetry = new Telemetry(ops.conn, ops.prefix);
  await telemetry.publishWorker({ object: 'worker', address: '10.0.0.7:50051', resource_class: 'cpu', worker_id: 'w7', device: 'cpu', gpu_name: '', memory_total_bytes: 8 * 2 ** 30, memory_free_bytes: 6 * 2 ** 30, active_runs: 1, families: ['encoder'], versions: {}, seen_at: iso(Date.now()) }, 30);
  await telemetry.publishWorker({ object: 'worker', address: '10.0.0.8:50051', resource_class: 'gpu-4g', worker_id: 'w8', device: 'cuda', gpu_name: 'NVIDIA T4', memory_total_bytes: 16 * 2 ** 30, memory_free_bytes: 15 * 2 ** 30, active_runs: 0, families: ['encoder'], versions: {}, seen_at: iso(Date.now()) }, 30);
  const lag = emptyLag();
  for (const s of [0.003, 0.02, 0.02, 0.7]) observeLag(lag, s);
  await telemetry.addLag('cpu', lag);

  const res = await fetch(`${ops.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();

  assert.ok((sample(text, 'makam_http_request_duration_seconds_count{method="GET",route="/v1/jobs/:id",status_code="200"}') ?? 0) >= 3, 'latency by route pattern');
  assert.equal(sample(text, 'makam_http_request_duration_seconds_count{method="GET",route="/v1/jobs/:id",status_code="404"}'), 1);
  assert.equal(sample(text, 'makam_http_request_duration_seconds_count{method="POST",route="/v1/jobs",status_code="202"}'), 1);

  assert.equal(sample(text, 'makam_queue_jobs{resource_class="cpu",state="waiting"}'), 1);
  assert.equal(sample(text, 'makam_queue_jobs{resource_class="gpu-4g",state="waiting"}'), 0);

  assert.equal(sample(text, 'makam_jobs{status="queued"}'), 1);
  assert.equal(sample(text, 'makam_jobs{status="succeeded"}'), 2);
  assert.equal(sample(text, 'makam_jobs{status="failed"}'), 1);
  assert.equal(sample(text, 'makam_job_duration_seconds_count{resource_class="cpu",status="succeeded"}'), 2);
  assert.equal(sample(text, 'makam_job_duration_seconds_bucket{le="60",resource_class="cpu",status="succeeded"}'), 1);
  assert.equal(sample(text, 'makam_job_duration_seconds_sum{resource_class="cpu",status="succeeded"}'), 445);

  assert.equal(sample(text, 'makam_workers{resource_class="cpu"}'), 1);
  assert.equal(sample(text, 'makam_workers{resource_class="gpu-4g"}'), 1);
  assert.equal(sample(text, 'makam_worker_memory_total_bytes{resource_class="gpu-4g",worker="10.0.0.8:50051",device="NVIDIA T4"}'), 16 * 2 ** 30);
  assert.equal(sample(text, 'makam_worker_active_runs{resource_class="cpu",worker="10.0.0.7:50051",device="cpu"}'), 1);

  assert.match(text, /^# TYPE makam_metric_ingest_lag_seconds histogram$/m);
  assert.equal(sample(text, 'makam_metric_ingest_lag_seconds_bucket{resource_class="cpu",le="0.005"}'), 1);
  assert.equal(sample(text, 'makam_metric_ingest_lag_seconds_bucket{resource_class="cpu",le="0.025"}'), 3);
  assert.equal(sample(text, 'makam_metric_ingest_lag_seconds_bucket{resource_class="cpu",le="+Inf"}'), 4);
  assert.equal(sample(text, 'makam_metric_ingest_lag_seconds_count{resource_class="cpu"}'), 4);
  assert.ok(Math.abs(sample(text, 'makam_metric_ingest_lag_seconds_sum{resource_class="cpu"}')! - 0.743) < 1e-9);
  assert.match(text, /^makam_api_process_resident_memory_bytes \d+/m);
});
