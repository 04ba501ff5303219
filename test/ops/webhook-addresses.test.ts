// Webhooks go to public addresses only (no SSRF into Redis, cloud metadata or the private
// network): refused by name when registered, and refused again at every delivery, where a name
// may resolve elsewhere than it did.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebhookStore } from '../../services/api/src/webhooks/webhook-store.ts';
import { startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;
let receiver: Server;
let hits = 0;

before(async () => {
  ops = await startOpsApp();
  receiver = createServer((_req, res) => {
    hits++;
    res.end('ok');
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
});
after(async () => {
  await ops?.close();
  receiver?.close();
});

const register = (url: string) =>
  fetch(`${ops.url}/v1/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${ops.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ url }) });

test('a webhook URL on loopback, a private network, link-local or a reserved range is refused naming url', async () => {
  for (const url of ['http://127.0.0.1:6379/', 'http://localhost:8080/hook', 'http://10.1.2.3/h', 'http://192.168.0.10/h', 'http://172.16.5.5/h', 'http://169.254.169.254/latest/meta-data', 'http://[::1]:80/', 'http://[::ffff:127.0.0.1]/', 'http://[fd00::1]/', 'http://0.0.0.0/', 'http://100.64.0.1/']) {
    const res = await register(url);
    assert.equal(res.status, 400, url);
    const { error } = (await res.json()) as { error: { code: string; param: string; message: string } };
    assert.equal(error.code, 'webhook_url_not_allowed', url);
    assert.equal(error.param, 'url');
    assert.match(error.message, /private or reserved network .*public addresses only/);
  }
  const unresolvable = await register('http://no-such-host.invalid/h');
  assert.equal(unresolvable.status, 400);
  assert.match(((await unresolvable.json()) as { error: { message: string } }).error.message, /does not resolve/);
  assert.equal(((await (await ops.api('/v1/webhooks')).json()) as { data: unknown[] }).data.length, 0, 'nothing stored');
  // A public address is taken (registration needs no network for a literal address).
  assert.equal((await register('https://93.184.215.14/hooks')).status, 201);
});

test('a stored webhook whose address is private is not delivered to, and not retried', async () => {
  // As if registered while private addresses were allowed, or through a name that resolved elsewhere then.
  const store = new WebhookStore(ops.conn, ops.prefix);
  const port = (receiver.address() as { port: number }).port;
  const { record } = await store.create('acme', `http://localhost:${port}/hook`, ['job.succeeded'], null);
  const literal = (await store.create('acme', `http://127.0.0.1:${port}/hook`, ['job.succeeded'], null)).record;
  const job = await ops.job();
  await ops.jobs.transition(job.id, 'running', { attempts: 1 });
  await ops.jobs.transition(job.id, 'succeeded', { finished_at: new Date().toISOString() });
  for (const hook of [record, literal]) {
    let log: Array<{ ok: boolean; will_retry: boolean; error: string }> = [];
    for (let i = 0; i < 100 && log.length === 0; i++) {
      await sleep(100);
      log = ((await (await ops.api(`/v1/webhooks/${hook.id}/deliveries`)).json()) as { data: typeof log }).data;
    }
    assert.equal(log.length, 1, hook.url);
    assert.equal(log[0]!.ok, false);
    assert.equal(log[0]!.will_retry, false);
    assert.match(log[0]!.error, /^EADDRNOTALLOWED: .*public addresses only/);
  }
  await sleep(500);
  assert.equal(hits, 0, 'the private receiver heard nothing');
});
