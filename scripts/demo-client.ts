// The demo's client side: waits for the stack, uploads the sample, submits the job, shows its
// progress, prints the final metrics, downloads the model and checks its sha256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectWorker } from '../services/dispatcher/src/grpc/worker-client.ts';

const { values: args } = parseArgs({
  options: { api: { type: 'string' }, 'api-key': { type: 'string' }, worker: { type: 'string' }, data: { type: 'string' }, job: { type: 'string' }, out: { type: 'string' } },
});
const api = args.api!;

const auth = { authorization: `Bearer ${args['api-key']}` };

async function call<T = any>(pathname: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${api}${pathname}`, { ...init, headers: { ...auth, ...(init?.headers as Record<string, string> | undefined) } });
  const body = await res.json();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${pathname}: ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}

async function waitReady(): Promise<void> {
  const worker = connectWorker(args.worker!);
  const deadline = Date.now() + 120_000;
  try {
    for (;;) {
      const apiUp = await fetch(`${api}/readyz`).then((r) => r.ok, () => false);
      const caps = await worker.getCapabilities({}, { timeoutMs: 1000 }).catch(() => null);
      if (apiUp && caps) {
        console.log(`worker ready: ${caps.device}${caps.gpuName ? ` (${caps.gpuName})` : ''}, families ${caps.families.join(', ')}`);
        return;
      }
      if (Date.now() > deadline) throw new Error('the stack did not come up in 120 s; see var/demo/logs');
      await sleep(300);
    }
  } finally {
    worker.close();
  }
}

const fmt = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(4));

await waitReady();
const dataset = await call('/v1/datasets?name=lyrics-sample', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: await readFile(args.data!) });
console.log(`dataset ${dataset.id}: ${dataset.rows} rows, labels ${Object.entries(dataset.label_counts).map(([l, n]) => `${l}=${n}`).join(' ')}`);
const request = JSON.parse(await readFile(args.job!, 'utf8'));
request.dataset = dataset.id;
const submitted = await call('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
console.log(`job ${submitted.id}: ${submitted.status} on class ${submitted.resource_class}`);

let job = submitted;
let shownEpochs = 0;
let lastEpoch = -1;
while (!['succeeded', 'failed', 'cancelled'].includes(job.status)) {
  await sleep(500);
  job = await call(`/v1/jobs/${submitted.id}`);
  const p = job.progress;
  // A terminal gets a live line; a log gets the same line once an epoch.
  const line = p ? `  ${job.status} epoch ${p.epoch}/${job.hyperparameters.epochs} step ${p.step}/${p.total_steps}` : '';
  if (p && process.stdout.isTTY) process.stdout.write(`\r${line}   `);
  else if (p && p.epoch !== lastEpoch) console.log(line);
  lastEpoch = p?.epoch ?? 0;
  const series = await call(`/v1/jobs/${submitted.id}/metrics`);
  for (const m of series.data.slice(shownEpochs)) {
    process.stdout.write(`${process.stdout.isTTY ? '\r' : ''}  epoch ${m.epoch}: train_loss ${fmt(m.train_loss)} val_loss ${fmt(m.validation_loss)} accuracy ${fmt(m.accuracy)} macro_f1 ${fmt(m.macro_f1)}\n`);
  }
  shownEpochs = series.data.length;
}
console.log(`${process.stdout.isTTY ? '\n' : ''}job ${job.status}`);
if (job.status !== 'succeeded') {
  console.error(JSON.stringify(job.error));
  process.exit(1);
}
console.log('final validation metrics:');
for (const k of ['accuracy', 'weighted_f1', 'macro_f1', 'validation_loss']) console.log(`  ${k.padEnd(16)} ${fmt(job.metrics[k])}`);
const baseline = (job.result as Record<string, unknown> | null)?.majority_baseline_accuracy;
if (typeof baseline === 'number') console.log(`  ${'majority baseline'.padEnd(16)} ${fmt(baseline)}`);

const res = await fetch(`${api}/v1/jobs/${job.id}/artifacts/model`, { headers: auth });
const bytes = Buffer.from(await res.arrayBuffer());
const sha = createHash('sha256').update(bytes).digest('hex');
if (sha !== res.headers.get('x-makam-sha256')) throw new Error('downloaded model does not match its sha256');
const out = args.out!;
const tarPath = path.join(out, 'model.tar.gz');
const modelDir = path.join(out, 'model');
await writeFile(tarPath, bytes);
await rm(modelDir, { recursive: true, force: true });
await mkdir(modelDir, { recursive: true });
execFileSync('tar', ['xzf', tarPath, '-C', modelDir]);
console.log(`model: ${tarPath} (${bytes.length} bytes, sha256 ${sha} verified), unpacked in ${modelDir}`);
console.log(`load it: AutoModelForSequenceClassification.from_pretrained("${modelDir}"), AutoTokenizer.from_pretrained("${modelDir}")`);
