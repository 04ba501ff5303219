// tracker 'wandb' is refused at POST /v1/jobs, naming the field, while every worker of the job's
// resource class reports (through the Telemetry dispatchers publish GetCapabilities to) no wandb in
// its versions; it queues once one does, and while none is reported at all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Telemetry, type WorkerInfo } from '@makam/shared/telemetry';
import { ROOT } from '../support/stack.ts';
import { startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;
let dataset: string;

before(async () => {
  ops = await startOpsApp({ MAKAM_MAX_EVENT_LOOP_DELAY_MS: '0' }); // overload refusals are not under test here
  const upload = await ops.api('/v1/datasets', { method: 'POST', headers: { 'content-type': 'application/jsonl' }, body: await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl')) });
  assert.equal(upload.status, 201);
  dataset = ((await upload.json()) as { id: string }).id;
});
after(async () => {
  await ops?.close();
});

const worker = (address: string, versions: Record<string, string>): WorkerInfo => ({
  object: 'worker', address, resource_class: 'cpu', worker_id: address, device: 'cpu', gpu_name: '', memory_total_bytes: 8 * 2 ** 30,
  memory_free_bytes: 6 * 2 ** 30, active_runs: 0, families: ['encoder', 'decoder', 'scratch', 'tfidf'], versions, seen_at: new Date().toISOString(),
});

async function submit(tracker: string): Promise<{ status: number; body: { error?: { code: string; param: string; message: string } } }> {
  const request = JSON.parse(await readFile(path.join(ROOT, 'examples/jobs/finetune-tiny-bert.json'), 'utf8'));
  Object.assign(request, { dataset, resource_class: 'cpu' });
  request.hyperparameters.tracker = tracker;
  const res = await ops.api('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; param: string; message: string } } };
}

test("tracker 'wandb' is refused while the class's workers all lack wandb, and queues once one has it", async () => {
  const telemetry = new Telemetry(ops.conn, ops.prefix);
  assert.equal((await submit('wandb')).status, 202); // no worker reported: it queues, and the run says why if it must

  await telemetry.publishWorker(worker('10.0.0.7:50051', { torch: '2.13.0', tensorboard: '2.21.0' }), 30);
  const refused = await submit('wandb');
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error?.code, 'invalid_request');
  assert.equal(refused.body.error?.param, 'hyperparameters.tracker');
  assert.match(refused.body.error?.message ?? '', /no worker of resource class cpu can import it; use tracker 'tensorboard'/);
  assert.equal((await submit('tensorboard')).status, 202);

  await telemetry.publishWorker(worker('10.0.0.8:50051', { torch: '2.13.0', wandb: '0.30.0' }), 30);
  assert.equal((await submit('wandb')).status, 202);
});
