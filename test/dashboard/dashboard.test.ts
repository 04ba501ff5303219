// The dashboard in a real headless Chromium (Debian's, driven by playwright-core) against the real
// stack: the API key entered as a user would, the jobs list, cancel from the page, a job's curves
// gaining points while it trains (server-sent events), and after it ends the final metrics, the
// confusion matrix and per-class scores matching the API's, the model card, the download button.
// Takes a screenshot of the job page (docs/dashboard.png with MAKAM_UPDATE_SCREENSHOT=1).
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
  stack = await startStack(redis.url);
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
