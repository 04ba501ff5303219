// The admin queue board (bull-board) at /admin/queues: refused without the admin key, served with
// it (Bearer or Basic), listing every class's queue and the webhook deliveries; off without a key.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { uniquePrefix } from '../support/redis.ts';
import { ADMIN_KEY, startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;

before(async () => {
  ops = await startOpsApp();
});
after(async () => {
  await ops?.close();
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('the queue board refuses requests without the admin key', async () => {
  for (const authorization of [undefined, `Bearer ${ops.key}`, 'Bearer wrong-admin-key-0123456789', basic('admin', 'wrong')]) {
    const res = await fetch(`${ops.url}/admin/queues`, { headers: authorization ? { authorization } : {} });
    assert.equal(res.status, 401, `refused with ${authorization}`);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="makam admin"/);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
  }
  const api = await fetch(`${ops.url}/admin/queues/api/queues`);
  assert.equal(api.status, 401);
});

test('with the admin key it serves the board and its queues', async () => {
  const page = await fetch(`${ops.url}/admin/queues`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /makam queues|bull/i);
  const viaBrowser = await fetch(`${ops.url}/admin/queues`, { headers: { authorization: basic('anyone', ADMIN_KEY) } });
  assert.equal(viaBrowser.status, 200);
  const queues = await fetch(`${ops.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(queues.status, 200);
  const names = ((await queues.json()) as { queues: Array<{ name: string }> }).queues.map((q) => q.name).sort();
  assert.deepEqual(names, ['train-cpu', 'train-gpu-4g', 'webhook-deliveries']);
});

test('without MAKAM_ADMIN_KEY there is no board', async () => {
  const prefix = uniquePrefix();
  const app = await buildApp(
    loadApiConfig({ REDIS_URL: ops.redis.url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-ops-')), MAKAM_LOG_LEVEL: 'warn', MAKAM_WEBHOOK_DELIVERY: 'false' }),
  );
  try {
    const res = await app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.statusCode, 404);
  } finally {
    await app.close();
  }
});
