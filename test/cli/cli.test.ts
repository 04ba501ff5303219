// The `makam` bin run as a process against the real stack (API, dispatcher, Python worker, Redis):
// upload, submit from a YAML file plus flags, watch to the end, list, download with the sha256
// verified, cancel, and the exit codes scripts rely on. Then /metrics after that real activity:
// the dispatcher's published worker and ingest lag, the job's duration.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { freePort } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, eventually, startStack, type Stack } from '../support/stack.ts';

const BIN = path.join(ROOT, 'node_modules/.bin/makam');

let redis: TestRedis;
let stack: Stack;
let dir: string;
let datasetId: string;
let jobId: string;

before(async () => {
  redis = await startRedis();
  stack = await startStack(redis.url);
  dir = await mkdtemp(path.join(tmpdir(), 'makam-cli-'));
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the bin with the stack's API and key in the environment (as a user's shell would have). */
function makam(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      cwd: dir,
      env: { ...process.env, MAKAM_API_URL: stack.apiUrl, MAKAM_API_KEY: stack.apiKey, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test('datasets upload prints the id (and the record with --json)', () => stack.withLogs(async () => {
  const human = await makam(['datasets', 'upload', path.join(ROOT, 'examples/data/lyrics-sample.csv'), '--name', 'lyrics']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^ds_\w+ {2}240 rows, 4 labels: arabesk, pop, rock, türkü$/m);
  const json = await makam(['--json', 'datasets', 'upload', path.join(ROOT, 'examples/data/lyrics-sample.jsonl')]);
  assert.equal(json.code, 0, json.stderr);
  const ds = JSON.parse(json.stdout);
  assert.equal(ds.rows, 240);
  datasetId = ds.id;
}));

test('jobs submit from a YAML file with flags on top, then jobs watch shows epoch, step, ETA and metrics and exits 0', { timeout: 180_000 }, () => stack.withLogs(async () => {
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  delete request.dataset;
  await writeFile(path.join(dir, 'job.yaml'), toYaml(request));
  const submitted = await makam(['jobs', 'submit', 'job.yaml', '--dataset', datasetId, '--epochs', '2', '--set', 'seed=7', '--json']);
  assert.equal(submitted.code, 0, submitted.stderr);
  const job = JSON.parse(submitted.stdout);
  assert.equal(job.status, 'queued');
  assert.equal(job.hyperparameters.epochs, 2);
  assert.equal(job.hyperparameters.seed, 7);
  assert.equal(job.hyperparameters.learning_rate, request.hyperparameters.learning_rate, 'the file gives the rest');
  jobId = job.id;

  const watched = await makam(['jobs', 'watch', jobId]);
  assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
  // Off a terminal the bar prints a line per epoch's metrics.
  const lines = watched.stderr.split('\n');
  for (const epoch of [1, 2]) {
    const line = lines.find((l) => l.startsWith(`epoch ${epoch}/2 `) && l.includes('macro_f1'));
    assert.ok(line, `a progress line for epoch ${epoch}:\n${watched.stderr}`);
    assert.match(line!, /step \d+\/\d+ {2}\d+% {2}ETA (\d+:\d\d|--:--) {2}loss \d\.\d{3} {2}val_loss \d\.\d{3} acc \d\.\d{3} macro_f1 \d\.\d{3}/);
  }
  assert.match(watched.stderr, /training on cpu/);
  assert.match(watched.stderr, /succeeded/);
  const final = (await stack.json(`/v1/jobs/${jobId}`)).body;
  assert.equal(final.status, 'succeeded');
  const summary = final.result?.summary ?? final.result;
  assert.match(watched.stdout, new RegExp(`^${jobId} {2}succeeded: accuracy ${summary.accuracy.toFixed(3)}, macro_f1 ${summary.macro_f1.toFixed(3)}`, 'm'));

  // --json: NDJSON events, the same as the API's event log.
  const ndjson = await makam(['--json', 'jobs', 'watch', jobId]);
  assert.equal(ndjson.code, 0);
  const events = ndjson.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const log = (await stack.json(`/v1/jobs/${jobId}/events?limit=1000`)).body.data;
  assert.deepEqual(events.map((e: { id: string }) => e.id), log.map((e: { id: string }) => e.id));
}));

test('jobs list shows the job with its best metric; --json gives the records', () => stack.withLogs(async () => {
  const human = await makam(['jobs', 'list']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^ID +STATUS +FAMILY +MODEL +DATASET +STEPS +BEST +CREATED$/m);
  assert.match(human.stdout, new RegExp(`^${jobId} +succeeded +encoder +\\(bert config\\) +${datasetId} +\\d+/\\d+ +macro_f1 \\d\\.\\d{3}`, 'm'));
  const json = await makam(['jobs', 'list', '--json', '--limit', '5']);
  assert.equal(JSON.parse(json.stdout).data[0].id, jobId);
}));

test('jobs download verifies the sha256, unpacks on request, and keeps nothing when the bytes are wrong', () => stack.withLogs(async () => {
  const res = await makam(['jobs', 'download', jobId, '-o', 'out/model.tar.gz', '--extract', 'out/model', '--json']);
  assert.equal(res.code, 0, res.stderr);
  const info = JSON.parse(res.stdout);
  const bytes = await readFile(path.join(dir, 'out/model.tar.gz'));
  assert.equal(info.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.equal(info.sha256, (await stack.json(`/v1/jobs/${jobId}`)).body.artifact.sha256);
  assert.equal(info.verified, true);
  const files = await readdir(path.join(dir, 'out/model'));
  for (const f of ['config.json', 'model.safetensors', 'labels.json', 'README.md']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);

  // Flip one byte of the stored archive: the download must fail with exit 3 and leave no file.
  const stored = path.join(stack.storeDir, 'artifacts', jobId, 'model.tar.gz');
  const fh = await open(stored, 'r+');
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, 100);
  await fh.write(Buffer.from([one[0]! ^ 0xff]), 0, 1, 100);
  await fh.close();
  const bad = await makam(['jobs', 'download', jobId, '-o', 'bad/model.tar.gz']);
  assert.equal(bad.code, 3, bad.stderr);
  assert.match(bad.stderr, /checksum mismatch/);
  await assert.rejects(stat(path.join(dir, 'bad/model.tar.gz')));
  await assert.rejects(stat(path.join(dir, 'bad/model.tar.gz.part')));
}));

test('exit codes: 1 for a cancelled job, 2 for usage and 4xx, 3 for an unreachable server', () => stack.withLogs(async () => {
  // A long job keeps the worker busy, so the second one stays queued and cancels at once.
  const long = JSON.parse((await makam(['jobs', 'submit', '--json', '--dataset', datasetId, '--family', 'tfidf'])).stdout);
  const queued = JSON.parse((await makam(['jobs', 'submit', '--json', '--dataset', datasetId, '--family', 'tfidf'])).stdout);
  const cancelled = await makam(['jobs', 'cancel', queued.id]);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.match(cancelled.stdout, new RegExp(`^${queued.id} {2}(cancelled|cancelling)$`, 'm'));
  const watched = await makam(['jobs', 'watch', queued.id]);
  assert.equal(watched.code, 1, watched.stderr);
  assert.match(watched.stdout, /cancelled/);
  await makam(['jobs', 'cancel', long.id]);

  const missing = await makam(['jobs', 'get', 'job_01jd0000000000000000000000']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no job with id/);
  const refused = await makam(['--json', 'jobs', 'submit', '--dataset', datasetId, '--family', 'encoder']);
  assert.equal(refused.code, 2);
  assert.equal(JSON.parse(refused.stderr).error.code, 'invalid_request');
  const noKey = await makam(['jobs', 'list'], { MAKAM_API_KEY: '' });
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /API key/);
  assert.equal((await makam(['jobs', 'frobnicate'])).code, 2);
  assert.equal((await makam(['jobs', 'submit', '--epochs', 'many', '--dataset', datasetId, '--family', 'encoder'])).code, 2);
  const down = await makam(['jobs', 'list'], { MAKAM_API_URL: `http://127.0.0.1:${await freePort()}` });
  assert.equal(down.code, 3);
  assert.match(down.stderr, /cannot reach the API/);
}));

test('after that activity /metrics shows the worker, ingest lag and the job duration the dispatcher left', () => stack.withLogs(async () => {
  const sample = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.slice(series.length + 1) ?? NaN);
  // The dispatcher publishes and flushes every 10 s.
  const text = await eventually('the dispatcher to flush ingest lag', async () => {
    const t = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    return sample(t, 'makam_metric_ingest_lag_seconds_count{resource_class="cpu"}') > 0 ? t : null;
  }, 20_000, 500);
  assert.equal(sample(text, 'makam_workers{resource_class="cpu"}'), 1);
  const memory = text.split('\n').find((l) => l.startsWith(`makam_worker_memory_total_bytes{resource_class="cpu",worker="${stack.workerAddress}"`));
  assert.ok(memory && Number(memory.split(' ').at(-1)) > 0, 'the worker memory');
  assert.ok(sample(text, 'makam_metric_ingest_lag_seconds_bucket{resource_class="cpu",le="1"}') > 0, 'events are stored within a second');
  // One duration per job that succeeded (the 'long' job above may finish before its cancel on a fast machine).
  const succeeded = (await stack.json('/v1/jobs?limit=100')).body.data.filter((j: { status: string }) => j.status === 'succeeded').length;
  assert.ok(succeeded >= 1);
  assert.equal(sample(text, 'makam_job_duration_seconds_count{resource_class="cpu",status="succeeded"}'), succeeded);
  assert.ok(sample(text, 'makam_jobs{status="cancelled"}') >= 1);
  const workers = (await stack.json('/v1/workers')).body.data;
  assert.equal(workers[0].address, stack.workerAddress);
  assert.equal(workers[0].resource_class, 'cpu');
}));
