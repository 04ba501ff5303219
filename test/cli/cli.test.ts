// The `makam` bin run as a process against the real stack (API, dispatcher, Python worker, Redis):
// upload, submit from a YAML file plus flags, watch to the end, list, download with the sha256
// verified, cancel, and the exit codes scripts rely on. Then /metrics after that real activity:
// the dispatcher's published worker and ingest lag, the job's duration. Last, a tune job: submitted
// from a request file, watched through its study, its trials listed, its trials watched.
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
  stack = await startStack(redis.url, { dispatcherEnv: { MAKAM_TUNE_POLL_MS: '200' } });
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
  assert.match(human.stdout, /^ID +KIND +STATUS +FAMILY +MODEL +DATASET +PROGRESS +BEST +CREATED$/m);
  assert.match(human.stdout, new RegExp(`^${jobId} +finetune +succeeded +encoder +\\(bert config\\) +${datasetId} +\\d+/\\d+ +macro_f1 \\d\\.\\d{3}`, 'm'));
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

test('a tune job: submit --file with --dataset over its placeholder, watch shows the study, trials lists them, trials watch to pruned or succeeded', { timeout: 300_000 }, () => stack.withLogs(async () => {
  // The shipped example, with a pruner that may stop a trial after its first epoch (2 epochs here).
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/tune-tiny-bert.json'), 'utf8'));
  assert.equal(request.dataset, '<DATASET_ID>');
  request.search.pruner = { type: 'median', startup_trials: 1, warmup_epochs: 0 };
  await writeFile(path.join(dir, 'tune.json'), JSON.stringify(request));
  const placeholder = await makam(['jobs', 'submit', '--file', 'tune.json']);
  assert.equal(placeholder.code, 2);
  assert.match(placeholder.stderr, /"dataset" in tune\.json is a placeholder \(<DATASET_ID>\): give --dataset ds_/);
  const notTune = await makam(['jobs', 'submit', '--dataset', datasetId, '--family', 'tfidf', '--trials', '2']);
  assert.equal(notTune.code, 2);
  assert.match(notTune.stderr, /--trials is for tune jobs/);

  const submitted = await makam(['jobs', 'submit', '-f', 'tune.json', '--dataset', datasetId, '--epochs', '2', '--trials', '3', '--parallelism', '1', '--json']);
  assert.equal(submitted.code, 0, submitted.stderr);
  const job = JSON.parse(submitted.stdout);
  assert.equal(job.kind, 'tune');
  assert.equal(job.dataset, datasetId);
  assert.equal(job.hyperparameters.epochs, 2);
  assert.deepEqual({ trials: job.search.trials, parallelism: job.search.parallelism }, { trials: 3, parallelism: 1 });
  assert.deepEqual(Object.keys(job.search.space), ['learning_rate', 'warmup_ratio']);

  // watch: the study's line instead of epochs, each trial queued and closed, then the best trial.
  const watched = await makam(['jobs', 'watch', job.id]);
  assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
  const { body: final } = await stack.json(`/v1/jobs/${job.id}`);
  assert.equal(final.status, 'succeeded');
  const { body: list } = await stack.json(`/v1/jobs/${job.id}/trials`);
  const trials: Array<{ number: number; job_id: string; status: string; state: string; value: number | null; intermediate_values: unknown[] }> = list.data;
  console.log(`tune (cli): ${trials.map((t) => `#${t.number} ${t.state} ${t.value?.toFixed(4) ?? '-'}`).join(', ')}`);
  assert.equal(trials.length, 3);
  // Where the first line stands depends on how fast the coordinator is off the mark; its shape does not.
  assert.match(watched.stderr, /^trials [0-3]\/3 {2}\[[░█]+\] {2}\d complete · \d pruned · \d failed · \d running {2}(no trial complete yet|best validation_loss [\d.]+ \(trial #\d\))$/m);
  const s = final.study;
  assert.match(watched.stderr, new RegExp(`^trials 3/3 {2}\\[█+\\] {2}${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · 0 running {2}best validation_loss [\\d.]+ \\(trial #${final.best_trial.number}\\)$`, 'm'));
  for (const t of trials) {
    assert.match(watched.stderr, new RegExp(`trial ${t.number} queued as ${t.job_id}`));
    assert.match(watched.stderr, new RegExp(`trial ${t.number} ${t.state} \\(`));
  }
  assert.doesNotMatch(watched.stderr, /epoch \d+\/2/, 'no epoch progress for a tune job');
  assert.match(watched.stdout, new RegExp(`^${job.id} {2}succeeded: best trial #${final.best_trial.number}, validation_loss [\\d.]+ \\(learning_rate=[\\d.e-]+, warmup_ratio=[\\d.e-]+\\); accuracy ${final.result.accuracy.toFixed(3)}, macro_f1 ${final.result.macro_f1.toFixed(3)}`, 'm'));

  // trials: a table as the API has them, the best starred; --json is the API's list.
  const table = await makam(['jobs', 'trials', job.id]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^TRIAL +STATE +STATUS +VALIDATION_LOSS +EPOCHS +LEARNING_RATE +WARMUP_RATIO +JOB$/m);
  for (const t of trials) {
    const star = t.number === final.best_trial.number ? '\\*' : '';
    const value = t.value === null ? '(\\([\\d.]+\\)|-)' : String(Number(t.value.toPrecision(4))).replace('.', '\\.');
    assert.match(table.stdout, new RegExp(`^${t.number}${star} +${t.state} +${t.status} +${value} +${t.intermediate_values.length}/2 +[\\d.e-]+ +[\\d.e-]+ +${t.job_id}$`, 'm'), `trial ${t.number}:\n${table.stdout}`);
  }
  assert.match(table.stdout, new RegExp(`^${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · 0 running {2}best validation_loss`, 'm'));
  const json = await makam(['--json', 'jobs', 'trials', job.id]);
  assert.deepEqual(JSON.parse(json.stdout), list);
  const notATune = await makam(['jobs', 'trials', trials[0]!.job_id]);
  assert.equal(notATune.code, 2);
  assert.match(notATune.stderr, /only tune jobs have trials/);

  // get: the record on stdout, the study line on stderr; list: kinds and the study's progress.
  const got = await makam(['jobs', 'get', job.id]);
  assert.equal(JSON.parse(got.stdout).id, job.id);
  assert.match(got.stderr, new RegExp(`^${job.id} {2}succeeded {2}trials 3/3 `));
  const listed = await makam(['jobs', 'list']);
  assert.match(listed.stdout, new RegExp(`^${job.id} +tune +succeeded +encoder +\\(bert config\\) +${datasetId} +3/3 trials +validation_loss \\d\\.\\d{3}`, 'm'));
  for (const t of trials) assert.match(listed.stdout, new RegExp(`^${t.job_id} +trial #${t.number} +${t.status} `, 'm'));
  const onlyTrials = await makam(['jobs', 'list', '--kind', 'trial', '--json']);
  assert.deepEqual(JSON.parse(onlyTrials.stdout).data.map((j: { id: string }) => j.id).sort(), trials.map((t) => t.job_id).sort());

  // A trial's watch names its tune job; a pruned trial exits 1 (it did not succeed: no model).
  for (const t of trials) {
    const w = await makam(['jobs', 'watch', t.job_id]);
    assert.match(w.stderr, new RegExp(`^trial #${t.number} of ${job.id}: learning_rate=`));
    assert.equal(w.code, t.status === 'succeeded' ? 0 : 1, `trial ${t.number} ${t.status}`);
    if (t.status === 'pruned') assert.match(w.stdout, new RegExp(`^${t.job_id} {2}pruned: stopped by its tune job's pruner after epoch 1 \\(not an error`, 'm'));
  }
}));

test('an ensemble: jobs submit ensemble.yaml (kind: ensemble, members) and --watch to its result; training flags and placeholders refused', { timeout: 240_000 }, () => stack.withLogs(async () => {
  // Two quick members on the same data hyperparameters (a test split, no refit: what an ensemble needs).
  const members: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await makam(['--json', 'jobs', 'submit', '--dataset', datasetId, '--family', 'tfidf', '--set', 'test_fraction=0.2', '--set', 'refit=false']);
    assert.equal(r.code, 0, r.stderr);
    members.push(JSON.parse(r.stdout).id);
  }
  await writeFile(path.join(dir, 'ensemble-draft.yaml'), toYaml({ kind: 'ensemble', members: [members[0], '<JOB_ID>'], method: 'average' }));
  const placeholder = await makam(['jobs', 'submit', 'ensemble-draft.yaml']);
  assert.equal(placeholder.code, 2);
  assert.match(placeholder.stderr, /"members\.1" in ensemble-draft\.yaml is a placeholder \(<JOB_ID>\)/);
  await writeFile(path.join(dir, 'ensemble.yaml'), toYaml({ kind: 'ensemble', members, method: 'average' }));
  const flagged = await makam(['jobs', 'submit', 'ensemble.yaml', '--epochs', '3']);
  assert.equal(flagged.code, 2);
  assert.match(flagged.stderr, /--epochs is not for an ensemble job/);
  for (const id of members) assert.equal((await stack.finished(id, 120_000)).status, 'succeeded', id);

  const watched = await makam(['jobs', 'submit', 'ensemble.yaml', '--watch']);
  assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
  const id = /^(job_\w+) {2}queued on /m.exec(watched.stderr)?.[1];
  assert.ok(id, watched.stderr);
  const job = (await stack.json(`/v1/jobs/${id}`)).body;
  assert.equal(job.kind, 'ensemble');
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.deepEqual(job.result.ensemble.members.map((m: { job_id: string }) => m.job_id), members);
  assert.match(watched.stdout, new RegExp(`^${id} {2}succeeded: accuracy ${job.result.accuracy.toFixed(3)}, macro_f1 ${job.result.macro_f1.toFixed(3)}`, 'm'));
}));

test('jobs watch names the masked-LM phase: its own epochs and steps, its loss per epoch, then fine-tuning', { timeout: 180_000 }, () => stack.withLogs(async () => {
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  delete request.dataset;
  await writeFile(path.join(dir, 'mlm.yaml'), toYaml(request));
  const watched = await makam(['jobs', 'submit', 'mlm.yaml', '--dataset', datasetId, '--epochs', '1', '--set', 'mlm_epochs=2', '--watch']);
  assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
  // Off a terminal: the first progress line (the phase's first step), each MLM epoch's loss, then fine-tuning's epoch.
  assert.match(watched.stderr, /^masked-LM epoch 1\/2 {2}\[[█░]+\] {2}step 1\/\d+ /m);
  assert.match(watched.stderr, /^masked-LM epoch 2: mlm_loss \d+\.\d{4}$/m);
  assert.match(watched.stderr, /^epoch 1\/1 {2}\[█+\] {2}step (\d+)\/\1 {2}100% .*macro_f1/m);
}));
