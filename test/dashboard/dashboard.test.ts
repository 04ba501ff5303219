// The dashboard in a real headless Chromium (Debian's, driven by playwright-core) against the real
// stack: the API key entered as a user would, the jobs list, cancel from the page, a job's curves
// gaining points while it trains (server-sent events), and after it ends the final metrics, the
// confusion matrix and per-class scores matching the API's, the model card, the download button.
// A tune job's page: the study's progress and trials table growing while it runs, then the trials,
// their states, the objective plot and the importances as the API has them; a trial's page links
// back to its tune job; the jobs list shows kinds and pruned trials.
// Takes screenshots of the job pages (docs/dashboard.png and docs/dashboard-tune.png with
// MAKAM_UPDATE_SCREENSHOT=1).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { ROOT, startStack, type Stack } from '../support/stack.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let redis: TestRedis;
let stack: Stack;
let browser: BrowserContext;
let page: Page;

before(async () => {
  redis = await startRedis();
  // One worker: the first test's blocker holds it; tune trials run one at a time. A short study poll.
  stack = await startStack(redis.url, { dispatcherEnv: { MAKAM_TUNE_POLL_MS: '200' } });
  const profile = await mkdtemp(path.join(tmpdir(), 'makam-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 900 },
    acceptDownloads: true,
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});
after(async () => {
  await browser?.close();
  await stack?.stop();
  await redis?.stop();
});

/** The number of points a chart draws, read in the page. */
const pointsIn = (testid: string) => `Number(document.querySelector('[data-testid="${testid}"] svg')?.getAttribute('data-points') ?? 0)`;
const points = async (testid: string): Promise<number> => Number((await page.locator(`[data-testid="${testid}"] svg`).getAttribute('data-points')) ?? 0);

test('the built files are what the sources build to, and the sources type-check', () => {
  const check = spawnSync(process.execPath, ['services/dashboard/build.ts', '--check'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const tsc = spawnSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'services/dashboard/tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
});

test('a job page shows live curves, then final metrics, confusion matrix and model card that match the API', { timeout: 240_000, skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, () => stack.withLogs(async () => {
  const upload = await stack.json('/v1/datasets?name=lyrics', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')) });
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  const submit = async (epochs: number) => {
    request.hyperparameters.epochs = epochs;
    return (await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) })).body;
  };
  // A long job holds the one worker, so the job to watch waits queued until the page is open.
  const blocker = await submit(100);
  const job = await submit(6);

  // Without a key the API refuses; the page says to enter one.
  await page.goto(`${stack.apiUrl}/`);
  assert.match(page.url(), /\/dashboard\/$/);
  await page.getByTestId('error').waitFor();
  assert.match((await page.getByTestId('error').textContent()) ?? '', /API key/);
  await page.getByTestId('api-key').fill(stack.apiKey);
  await page.getByTestId('save-key').click();
  await page.locator(`tr[data-job="${job.id}"]`).waitFor();
  await page.locator(`tr[data-job="${blocker.id}"]`).waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('makam.apiKey')), stack.apiKey);

  // The queued job's page, sampled from inside the page: (status shown, points drawn).
  await page.locator(`tr[data-job="${job.id}"] a`).click();
  await page.locator('h1 [data-testid="status"]', { hasText: 'queued' }).waitFor();
  await page.evaluate(`window.samples = []; setInterval(() => window.samples.push([document.querySelector('h1 [data-testid="status"]')?.textContent, ${pointsIn('loss-chart')}]), 25)`);

  // Cancel the running blocker from its own page, in a second tab.
  const other = await browser.newPage();
  await other.goto(`${stack.apiUrl}/dashboard/#/jobs/${blocker.id}`);
  await other.getByTestId('cancel').click();
  await other.locator('h1 [data-testid="status"]', { hasText: 'cancelled' }).waitFor({ timeout: 60_000 });
  assert.equal((await stack.json(`/v1/jobs/${blocker.id}`)).body.status, 'cancelled');
  await other.close();

  // The watched job runs: its loss curve gains points while the page shows it running.
  await page.waitForFunction(`${pointsIn('loss-chart')} > 0`, undefined, { timeout: 120_000 });
  assert.match((await page.getByTestId('progress').textContent()) ?? '', /epoch \d\/6 · step \d+\/\d+/);

  // The end: final figures as the API has them.
  await page.locator('h1 [data-testid="status"]', { hasText: 'succeeded' }).waitFor({ timeout: 180_000 });
  await page.getByTestId('confusion-matrix').waitFor();
  await page.locator('[data-testid="model-card"] h3').first().waitFor();
  const { body: final } = await stack.json(`/v1/jobs/${job.id}`);
  assert.equal(final.status, 'succeeded');
  const samples = (await page.evaluate('window.samples')) as Array<[string, number]>;
  const whileRunning = [...new Set(samples.filter(([status, n]) => status === 'running' && n > 0).map(([, n]) => n))];
  assert.ok(whileRunning.length >= 3 && whileRunning.every((n, i) => i === 0 || n > whileRunning[i - 1]!), `the curve grew point by point while running: ${whileRunning.join(' → ')}`);
  for (const name of ['accuracy', 'macro_f1', 'weighted_f1', 'majority_baseline_accuracy']) {
    const cell = page.getByTestId(`metric-${name}`);
    assert.equal(Number(await cell.getAttribute('data-value')), final.result[name], name);
    assert.equal(await cell.textContent(), final.result[name].toFixed(3), name);
  }
  assert.equal(await points('metric-chart'), 3 * 6, 'three metrics for each of the 6 epochs');

  const labels = await page.locator('[data-testid="confusion-matrix"] th.col').allTextContents();
  assert.deepEqual(labels, ['arabesk', 'pop', 'rock', 'türkü']);
  const counts = (await page.locator('[data-testid="confusion-matrix"] td').allTextContents()).map(Number);
  assert.equal(counts.length, 16);
  const evaluation = final.result.test ?? null;
  const examples = evaluation?.examples ?? final.result.validation_examples;
  assert.equal(counts.reduce((a, b) => a + b, 0), examples, 'the matrix counts every evaluated example');
  const perClassRows = await page.locator('[data-testid="per-class"] tr[data-label]').count();
  assert.equal(perClassRows, 4);
  if (evaluation?.per_class) {
    const shown = await page.locator('[data-testid="per-class"] tr[data-label="rock"] td').allTextContents();
    assert.equal(shown[3]!.trim(), evaluation.per_class.rock.f1.toFixed(3));
  }
  assert.match((await page.getByTestId('model-card').textContent()) ?? '', /Labels \(4\): arabesk, pop, rock, türkü/);
  assert.match((await page.getByTestId('hyperparameters').textContent()) ?? '', /learning_rate/);

  // The download button saves the archive the API serves.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download').click()]);
  assert.equal(download.suggestedFilename(), `${job.id}-model.tar.gz`);
  const saved = await readFile((await download.path())!);
  assert.equal(createHash('sha256').update(saved).digest('hex'), final.artifact.sha256);

  // The top of the page: progress, results, curves, confusion matrix and per-class scores.
  await page.evaluate('window.scrollTo(0, 0)');
  const evaluationBottom = await page.getByTestId('per-class').evaluate((el) => (el as unknown as { closest(s: string): { getBoundingClientRect(): { bottom: number } } }).closest('.panel').getBoundingClientRect().bottom);
  // Refresh the README's picture with MAKAM_UPDATE_SCREENSHOT=1; otherwise it goes to a temporary file.
  const shot = process.env.MAKAM_UPDATE_SCREENSHOT ? path.join(ROOT, 'docs/dashboard.png') : path.join(await mkdtemp(path.join(tmpdir(), 'makam-shot-')), 'dashboard.png');
  await page.screenshot({ path: shot, clip: { x: 0, y: 0, width: 1360, height: Math.ceil(Math.max(evaluationBottom, 600) + 24) }, fullPage: true });
}));

test('a tune job page shows the study, its trials and the objective per trial, live and at the end, as the API has them', { timeout: 300_000, skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/tune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  // Four epochs: long enough on a fast machine for the page to see each trial run.
  Object.assign(request.hyperparameters, { epochs: 4, test_fraction: 0.2 });
  // Four short trials one at a time; the median pruner may stop a trial after any epoch but the last.
  Object.assign(request.search, { trials: 4, parallelism: 1, pruner: { type: 'median', startup_trials: 1, warmup_epochs: 0 } });
  const submitted = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  const id: string = submitted.body.id;

  await page.goto(`${stack.apiUrl}/dashboard/`);
  await page.evaluate((key) => localStorage.setItem('makam.apiKey', key), stack.apiKey);
  await page.goto(`${stack.apiUrl}/dashboard/#/jobs/${id}`);
  await page.locator('h1 [data-testid="kind"]', { hasText: 'tune' }).waitFor();
  // Sampled from inside the page while it runs: (status, trial rows, study progress text).
  await page.evaluate(`window.tuneSamples = []; setInterval(() => window.tuneSamples.push([document.querySelector('h1 [data-testid="status"]')?.textContent, document.querySelectorAll('[data-testid="trials"] tbody tr[data-trial]').length, document.querySelector('[data-testid="study-progress"]')?.textContent]), 100)`);
  await page.locator('[data-testid="trials"] tr[data-state="running"]').first().waitFor({ timeout: 120_000 });
  await page.locator('h1 [data-testid="status"]', { hasText: 'succeeded' }).waitFor({ timeout: 240_000 });

  const { body: job } = await stack.json(`/v1/jobs/${id}`);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  const { body: list } = await stack.json(`/v1/jobs/${id}/trials`);
  const trials: Array<{ number: number; job_id: string; status: string; state: string; value: number | null; params: Record<string, number>; intermediate_values: unknown[] }> = list.data;
  assert.equal(trials.length, 4);
  console.log(`tune (dashboard): ${trials.map((t) => `#${t.number} ${t.state} ${t.value?.toFixed(4) ?? '-'} (${t.intermediate_values.length} epochs)`).join(', ')}`);

  // It followed the study live: more trial rows over time while running.
  const samples = (await page.evaluate('window.tuneSamples')) as Array<[string, number, string]>;
  const rowsWhileRunning = [...new Set(samples.filter(([status]) => status === 'running').map(([, n]) => n))];
  assert.ok(rowsWhileRunning.length >= 3 && rowsWhileRunning.every((n, i) => i === 0 || n > rowsWhileRunning[i - 1]!), `trial rows appeared one by one while running: ${rowsWhileRunning.join(' → ')}`);
  assert.ok(samples.some(([status, , text]) => status === 'running' && /trials finished: .* 1 running$/.test(text)), 'a running trial was counted while it ran');

  // The study's progress and best, the trials table row by row, as the API has them.
  const s = job.study;
  await page.locator('[data-testid="study-progress"]', { hasText: '4 of 4 trials finished' }).waitFor();
  assert.equal(await page.getByTestId('study-progress').textContent(), `4 of 4 trials finished: ${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · 0 running`);
  assert.equal(Number(await page.getByTestId('best-value').getAttribute('data-value')), job.best_trial.value);
  assert.equal(await page.getByTestId('best-link').getAttribute('href'), `#/jobs/${job.best_trial.job_id}`);
  assert.match((await page.getByTestId('best-params').textContent()) ?? '', /^learning_rate=[\d.e-]+, warmup_ratio=[\d.e-]+$/);
  const headers = await page.locator('[data-testid="trials"] thead th').allTextContents();
  assert.deepEqual(headers, ['Trial', 'State', 'Job status', 'learning_rate', 'warmup_ratio', 'validation_loss', 'Epochs', 'Run time']);
  assert.equal(await page.locator('[data-testid="trials"] tbody tr[data-trial]').count(), 4);
  for (const t of trials) {
    const row = page.locator(`[data-testid="trials"] tr[data-trial="${t.number}"]`);
    assert.equal(await row.getAttribute('data-state'), t.state, `trial ${t.number} state`);
    assert.equal(await row.getAttribute('data-status'), t.status, `trial ${t.number} status`);
    assert.equal(await row.getByTestId('trial-state').textContent(), t.state);
    assert.equal(await row.getByTestId('status').textContent(), t.status);
    assert.equal(await row.locator('a').first().getAttribute('href'), `#/jobs/${t.job_id}`);
    assert.equal(await row.getByTestId('trial-epochs').textContent(), `${t.intermediate_values.length}/4`);
    const value = await row.getByTestId('trial-value').getAttribute('data-value');
    assert.equal(value === '' ? null : Number(value), t.value, `trial ${t.number} value`);
    for (const name of ['learning_rate', 'warmup_ratio']) {
      const shown = Number(await row.locator(`td[data-param="${name}"]`).textContent());
      assert.ok(Math.abs(shown - t.params[name]!) <= Math.abs(t.params[name]!) * 0.01, `trial ${t.number} ${name}: ${shown} vs ${t.params[name]}`);
    }
  }
  assert.equal(await page.locator(`[data-testid="trials"] tr[data-trial="${job.best_trial.number}"].best-row`).count(), 1, 'the best trial is marked');

  // The plot: one marker per trial by state, and the best-so-far line.
  const seriesPoints = async (name: string) => {
    const g = page.locator(`[data-testid="trials-chart"] g.chart-series[data-series="${name}"]`);
    return (await g.count()) ? Number(await g.getAttribute('data-points')) : 0;
  };
  const count = (state: string) => trials.filter((t) => t.state === state).length;
  assert.equal(await seriesPoints('complete'), count('complete'));
  assert.equal(await page.locator('[data-testid="trials-chart"] g[data-series="pruned (last epoch)"] .chart-point').count(), count('pruned'));
  assert.equal(await page.locator('[data-testid="trials-chart"] g[data-series="failed"] .chart-point').count(), trials.filter((t) => t.state === 'fail' && t.intermediate_values.length > 0).length);
  assert.ok((await seriesPoints('best so far')) >= 1, 'the best-so-far line');
  assert.equal(await page.locator('[data-testid="trial-curves"] g.chart-series').count(), trials.filter((t) => t.intermediate_values.length > 0).length, "each trial's objective per epoch");
  // Importances as bars, largest first; the best trial's final metrics.
  const importances = Object.entries(job.importances ?? {}).sort((a, b) => (b[1] as number) - (a[1] as number)).map(([k]) => k);
  assert.deepEqual(await page.locator('[data-testid="importances"] .bar-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-param'))), importances);
  assert.equal(Number(await page.getByTestId('metric-macro_f1').getAttribute('data-value')), job.result.macro_f1);
  await page.getByTestId('confusion-matrix').waitFor();

  // The README's picture of a tune job page.
  await page.evaluate('window.scrollTo(0, 0)');
  const tableBottom = await page.getByTestId('importances').evaluate((el) => (el as unknown as { closest(s: string): { getBoundingClientRect(): { bottom: number } } }).closest('.panel').getBoundingClientRect().bottom);
  const shot = process.env.MAKAM_UPDATE_SCREENSHOT ? path.join(ROOT, 'docs/dashboard-tune.png') : path.join(await mkdtemp(path.join(tmpdir(), 'makam-shot-')), 'dashboard-tune.png');
  await page.screenshot({ path: shot, clip: { x: 0, y: 0, width: 1360, height: Math.ceil(Math.max(tableBottom, 600) + 24) }, fullPage: true });

  // A trial's page links back to its tune job and shows its number and parameters.
  const shownTrial = trials.find((t) => t.state === 'pruned') ?? trials.find((t) => t.number === job.best_trial.number)!;
  await page.locator(`[data-testid="trials"] tr[data-trial="${shownTrial.number}"] a`).first().click();
  await page.getByTestId('trial-of').waitFor();
  assert.match((await page.getByTestId('trial-of').textContent()) ?? '', new RegExp(`^Trial #${shownTrial.number} of tune job ${id}`));
  assert.equal(await page.locator('h1 [data-testid="status"]').textContent(), shownTrial.status);
  assert.match((await page.getByTestId('trial-params').textContent()) ?? '', /learning_rate = .*warmup_ratio = /);
  if (shownTrial.state === 'pruned') assert.match((await page.getByTestId('trial-of').textContent()) ?? '', /Stopped by the study's pruner after epoch [1-3]\b/);
  await page.getByTestId('parent-link').click();
  await page.locator('[data-testid="trials"] tr[data-trial]').first().waitFor();
  assert.match(page.url(), new RegExp(`#/jobs/${id}$`));

  // The jobs list: the tune job and its trials with their kinds and statuses; trials can be hidden.
  await page.goto(`${stack.apiUrl}/dashboard/#/`);
  await page.locator(`tr[data-job="${id}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-job="${id}"] [data-testid="kind"]`).textContent(), 'tune');
  assert.equal(await page.locator(`tr[data-job="${id}"] [data-testid="progress"]`).textContent(), '4/4 trials');
  for (const t of trials) {
    const row = page.locator(`tr[data-job="${t.job_id}"]`);
    assert.equal(await row.getAttribute('data-kind'), 'trial');
    assert.equal(await row.getByTestId('kind').textContent(), `trial #${t.number} of …${id.slice(-6)}`);
    assert.equal(await row.getByTestId('status').textContent(), t.status);
  }
  await page.getByTestId('show-trials').uncheck();
  assert.equal(await page.locator('tr[data-kind="trial"]').count(), 0);
  assert.equal(await page.locator(`tr[data-job="${id}"]`).count(), 1);
  await page.getByTestId('show-trials').check();
  assert.equal(await page.locator('tr[data-kind="trial"]').count(), 4);
}));

test('a job with a masked-LM phase: the progress names the phase while it runs, and its MLM loss per epoch is charted as the API has it', { timeout: 240_000, skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, () => stack.withLogs(async () => {
  const upload = await stack.uploadSample();
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  request.dataset = upload.body.id;
  Object.assign(request.hyperparameters, { epochs: 2, mlm_epochs: 4 });
  await page.goto(`${stack.apiUrl}/dashboard/`);
  await page.evaluate((key) => localStorage.setItem('makam.apiKey', key), stack.apiKey);
  const submitted = await stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
  const id: string = submitted.body.id;
  await page.goto(`${stack.apiUrl}/dashboard/#/jobs/${id}`);
  await page.getByTestId('progress').waitFor();
  // Sampled from inside the page: (progress text, MLM points drawn).
  await page.evaluate(`window.mlmSamples = []; setInterval(() => window.mlmSamples.push([document.querySelector('[data-testid="progress"]')?.textContent, ${pointsIn('mlm-chart')}]), 25)`);
  await page.locator('h1 [data-testid="status"]', { hasText: 'succeeded' }).waitFor({ timeout: 180_000 });

  // The chart: one point per MLM epoch, each the API's metric point.
  const series = (await stack.json(`/v1/jobs/${id}/metrics`)).body.data as Array<{ phase?: string; epoch: number; mlm_loss: number }>;
  const mlm = series.filter((p) => p.phase === 'mlm');
  assert.deepEqual(mlm.map((p) => p.epoch), [1, 2, 3, 4]);
  await page.waitForFunction(`${pointsIn('mlm-chart')} === 4`);
  assert.deepEqual(await page.locator('[data-testid="mlm-chart"] .chart-point title').allTextContents(), mlm.map((p) => `epoch ${p.epoch}: ${p.mlm_loss.toFixed(4)}`));
  // The fine-tune's loss curve has fine-tuning's steps only: its progress events and its 2 validation losses.
  const events = (await stack.json(`/v1/jobs/${id}/events?limit=1000`)).body.data as Array<{ type: string; data: { phase?: string } }>;
  const progress = events.filter((e) => e.type === 'progress');
  assert.ok(progress.some((e) => e.data.phase === 'mlm'), 'the worker sent the phase its progress');
  assert.equal(await points('loss-chart'), progress.filter((e) => e.data.phase !== 'mlm').length + 2);
  // While it ran: the phase's own epochs and steps, then fine-tuning's; the points came epoch by epoch.
  const samples = (await page.evaluate('window.mlmSamples')) as Array<[string, number]>;
  assert.ok(samples.some(([text]) => /^masked-LM epoch [1-4]\/4 · step \d+\/\d+/.test(text)), `the progress named the phase: ${[...new Set(samples.map(([t]) => t))].slice(0, 5).join(' | ')}`);
  const drawn = [...new Set(samples.map(([, n]) => n))];
  assert.ok(drawn.length >= 3 && drawn.every((n, i) => i === 0 || n > drawn[i - 1]!), `the MLM points appeared one by one: ${drawn.join(' → ')}`);
  assert.match((await page.getByTestId('progress').textContent()) ?? '', /^epoch 2\/2 · /);
}));
