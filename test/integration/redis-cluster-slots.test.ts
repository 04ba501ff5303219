// Key names and Redis Cluster: a cluster refuses (CROSSSLOT) any script or transaction whose keys
// hash to more than one slot. A single-node cluster (a real redis-server with cluster-enabled, all
// 16384 slots its own) enforces that rule on every command, so a job that goes through the whole
// stack on it with hash-tagged prefixes ({t...}, {t...-q}) shows every makam script, transaction
// and BullMQ command keeps to one slot. The default prefixes have no hash tag: the second test
// documents which of makam's keys then land in different slots (docs/deploy.md, Redis Cluster).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { redisKeys } from '@makam/shared/keys';
import { freePort } from '../support/ports.ts';
import { startStack, type Stack } from '../support/stack.ts';

let dir: string;
let server: ChildProcess;
let url: string;
let stack: Stack;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-cluster-'));
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  url = `redis://127.0.0.1:${port}`;
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  for (let i = 0; ; i++) {
    try {
      await r.connect();
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(100);
    }
  }
  await r.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
  while (!(await r.call('CLUSTER', 'INFO') as string).includes('cluster_state:ok')) await sleep(100);
  // The rule holds here as in a real cluster: keys of two slots in one script are refused.
  await assert.rejects(r.eval("return redis.call('MSET', KEYS[1], 1, KEYS[2], 2)", 2, 'a', 'b'), /CROSSSLOT|same slot/i);
  r.disconnect();
  stack = await startStack(url, { hashTag: true });
});
after(async () => {
  await stack?.stop();
  server?.kill('SIGTERM');
  if (server) await new Promise((r) => server.once('exit', r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('with hash-tagged prefixes a job goes through the whole stack on a cluster node: no command crosses slots', { timeout: 300_000 }, () => stack.withLogs(async () => {
  assert.match(stack.prefix, /^\{t[a-z0-9]+\}$/);
  const upload = await stack.uploadSample();
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  const submit = () => stack.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { validation_fraction: 0.2 } }) });
  const done = await submit();
  assert.equal(done.status, 202, JSON.stringify(done.body));
  const job = await stack.finished(done.body.id);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
  assert.ok((await stack.json(`/v1/jobs/${done.body.id}/metrics`)).body.data.length >= 1);
  // A cancel (pub/sub and the cancelling transitions) and a removal (removeDataset-5) too.
  const cancelled = await submit();
  assert.equal((await stack.json(`/v1/jobs/${cancelled.body.id}/cancel`, { method: 'POST' })).status < 300, true);
  assert.ok(['cancelled', 'succeeded'].includes((await stack.finished(cancelled.body.id)).status));
  assert.equal((await stack.api(`/v1/datasets/${upload.body.id}`, { method: 'DELETE' })).status < 300, true);
  assert.doesNotMatch(stack.logs(), /CROSSSLOT/);
}));

test('the default prefix has no hash tag: a job record and its streams, written by one script, span slots', async () => {
  const r = new Redis(url);
  try {
    const slots = async (prefix: string) => {
      const k = redisKeys(prefix);
      return new Set(await Promise.all([k.job('job_x'), k.jobEvents('job_x'), k.jobMetrics('job_x')].map((key) => r.call('CLUSTER', 'KEYSLOT', key))));
    };
    assert.ok((await slots('makam')).size > 1, 'appendWorkerEvent-3 needs one slot: fine on one Redis or Sentinel, CROSSSLOT on a cluster');
    assert.equal((await slots('{makam}')).size, 1);
  } finally {
    r.disconnect();
  }
});
