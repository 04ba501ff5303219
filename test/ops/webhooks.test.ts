// Webhooks end to end through a real local receiver: registered over the API (secret shown once),
// a job's terminal state POSTed with an HMAC-SHA256 signature of the raw body, a failed first
// attempt retried with backoff, every attempt in the delivery log, tenants kept apart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;
let receiver: Server;
let receiverUrl: string;
const received: Array<{ path: string; headers: IncomingHttpHeaders; body: string; answered: number }> = [];
/** Status codes to answer, in order; then 200. */
const script: number[] = [];

before(async () => {
  ops = await startOpsApp({ MAKAM_WEBHOOK_ALLOW_PRIVATE: 'true' }); // the receiver is on loopback
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = script.shift() ?? 200;
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), answered });
      res.writeHead(answered).end(answered === 200 ? 'ok' : 'try later');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
});
after(async () => {
  await ops?.close();
  receiver?.close();
});

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const create = async (key: string, body: Record<string, unknown>) =>
  fetch(`${ops.url}/v1/webhooks`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('a terminal job state is POSTed signed, retried after a failure, and every attempt is logged', async () => {
  const res = await create(ops.key, { url: `${receiverUrl}/hooks/makam`, description: 'ci' });
  assert.equal(res.status, 201);
  const hook = (await res.json()) as { id: string; secret: string; events: string[]; url: string };
  assert.match(hook.id, /^wh_/);
  assert.match(hook.secret, /^whsec_/);
  assert.deepEqual(hook.events, ['job.succeeded', 'job.failed', 'job.cancelled']);
  const listed = (await (await ops.api('/v1/webhooks')).json()) as { data: Array<Record<string, unknown>> };
  assert.deepEqual(listed.data.map((h) => h.id), [hook.id]);
  assert.equal('secret' in listed.data[0]!, false, 'the secret is shown only once');

  // Hooks that must stay silent: another tenant's, and one that wants failures only.
  const other = await create(ops.otherKey, { url: `${receiverUrl}/other-tenant` });
  assert.equal(other.status, 201);
  const failedOnly = (await (await create(ops.key, { url: `${receiverUrl}/failed-only`, events: ['job.failed'] })).json()) as { id: string };
  assert.equal((await fetch(`${ops.url}/v1/webhooks/${hook.id}`, { headers: { authorization: `Bearer ${ops.otherKey}` } })).status, 404);

  script.push(500); // the receiver fails the first attempt
  const job = await ops.job();
  await ops.jobs.transition(job.id, 'running', { attempts: 1 });
  await ops.jobs.transition(job.id, 'succeeded', { finished_at: new Date().toISOString(), result: { accuracy: 0.9 } });
  await waitFor('two attempts', () => received.filter((r) => r.path === '/hooks/makam').length >= 2);
  const [first, second] = received.filter((r) => r.path === '/hooks/makam');
  assert.equal(first!.answered, 500);
  assert.equal(second!.answered, 200);
  assert.equal(first!.body, second!.body, 'every attempt sends the same bytes');
  for (const r of [first!, second!]) {
    const expected = `sha256=${createHmac('sha256', hook.secret).update(r.body).digest('hex')}`;
    assert.equal(r.headers['x-makam-signature'], expected);
    assert.ok(Math.abs(Number(r.headers['x-makam-timestamp']) - Date.now() / 1000) < 60);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-makam-event'], 'job.succeeded');
  }
  assert.deepEqual([first!.headers['x-makam-delivery-attempt'], second!.headers['x-makam-delivery-attempt']], ['1', '2']);
  const event = JSON.parse(second!.body);
  assert.equal(event.type, 'job.succeeded');
  assert.match(event.id, /^evt_/);
  assert.equal(first!.headers['x-makam-event-id'], event.id);
  assert.equal(event.data.job.id, job.id);
  assert.equal(event.data.job.status, 'succeeded');
  assert.deepEqual(event.data.job.result, { accuracy: 0.9 });

  const log = (await (await ops.api(`/v1/webhooks/${hook.id}/deliveries`)).json()) as { data: Array<Record<string, unknown>> };
  assert.deepEqual(
    log.data.map(({ attempt, ok, response_status, will_retry, error, event_id, job_id }) => ({ attempt, ok, response_status, will_retry, error, event_id, job_id })),
    [
      { attempt: 2, ok: true, response_status: 200, will_retry: false, error: null, event_id: event.id, job_id: job.id },
      { attempt: 1, ok: false, response_status: 500, will_retry: true, error: 'the receiver answered 500', event_id: event.id, job_id: job.id },
    ],
  );

  // A job cancelled while queued ends in the API, not a dispatcher: it is announced all the same.
  const queued = await ops.job();
  await ops.jobs.transition(queued.id, 'cancelled', { finished_at: new Date().toISOString() }, 'cancelled while queued', ['queued']);
  await waitFor('the cancel', () => received.some((r) => r.path === '/hooks/makam' && r.headers['x-makam-event'] === 'job.cancelled'));

  await sleep(300);
  assert.equal(received.filter((r) => r.path !== '/hooks/makam').length, 0, "another tenant's hook and a failed-only hook hear nothing");
  assert.deepEqual(((await (await ops.api(`/v1/webhooks/${failedOnly.id}/deliveries`)).json()) as { data: unknown[] }).data, []);
  const metrics = await (await fetch(`${ops.url}/metrics`)).text();
  assert.match(metrics, /^makam_webhook_delivery_attempts\{outcome="retrying"\} 1$/m);
  assert.match(metrics, /^makam_webhook_delivery_attempts\{outcome="delivered"\} 2$/m);

  const deleted = await ops.api(`/v1/webhooks/${hook.id}`, { method: 'DELETE' });
  assert.deepEqual(await deleted.json(), { id: hook.id, object: 'webhook', deleted: true });
  assert.equal((await ops.api(`/v1/webhooks/${hook.id}`)).status, 404);
});

test('bad webhook requests are refused with the field named', async () => {
  const bad = await create(ops.key, { url: 'ftp://example.org/x' });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'url');
  const badEvent = await create(ops.key, { url: `${receiverUrl}/x`, events: ['job.started'] });
  assert.equal(badEvent.status, 400);
  const unknown = await create(ops.key, { url: `${receiverUrl}/x`, secret: 'mine' });
  assert.equal(unknown.status, 400);
  assert.match(((await unknown.json()) as { error: { message: string } }).error.message, /unknown field 'secret'/);
});
