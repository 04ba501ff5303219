// Live events as server-sent events, against a real Redis and a listening API: stream ids as
// cursors, Last-Event-ID resume, heartbeats, a clean end after the terminal status, and one Redis
// reader per watched job however many watch it (counted in CLIENT LIST).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { SseReader, startOpsApp, type OpsApp } from './app.ts';

let ops: OpsApp;

before(async () => {
  ops = await startOpsApp();
});
after(async () => {
  await ops?.close();
});

const auth = () => ({ authorization: `Bearer ${ops.key}` });
const progress = (step: number) => ({ type: 'progress' as const, attempt: 1, epoch: 1, step, total_steps: 10, train_loss: 1 / step, learning_rate: 1e-4 });

/** CLIENT LIST lines of the event readers of one job. */
async function readerClients(jobId: string): Promise<string[]> {
  const list = (await ops.conn.client('LIST')) as string;
  return list.split('\n').filter((l) => l.includes(`name=${ops.prefix}:sse-reader:${jobId} `));
}

test('a stream sends the backlog then live events with their cursors, heartbeats, and ends after the terminal status', async () => {
  const job = await ops.job();
  await ops.jobs.transition(job.id, 'running', { attempts: 1 });
  const reader = new SseReader(`${ops.url}/v1/jobs/${job.id}/events`, auth());
  await reader.until(() => reader.messages.length >= 2);
  assert.equal(reader.status, 200);
  assert.deepEqual(reader.messages.map((m) => m.event), ['status', 'status']);
  for (let step = 1; step <= 3; step++) await ops.jobs.appendEvent(job.id, progress(step));
  await reader.until(() => reader.messages.length >= 5);
  await reader.until(() => reader.comments >= 2); // heartbeats every 200 ms here
  await ops.jobs.transition(job.id, 'succeeded', { finished_at: new Date().toISOString() });
  await reader.finished;
  const events = reader.messages.map((m) => m.event);
  assert.deepEqual(events, ['status', 'status', 'progress', 'progress', 'progress', 'status', 'end']);
  assert.deepEqual(JSON.parse(reader.messages.at(-1)!.data), { status: 'succeeded' });

  // The ids are the JSON event log's cursors, and each data is the same object as its items.
  const log = (await (await ops.api(`/v1/jobs/${job.id}/events?limit=100`)).json()) as { data: Array<{ id: string }> };
  const streamed = reader.messages.filter((m) => m.id).map((m) => JSON.parse(m.data));
  assert.deepEqual(streamed, log.data);
  assert.deepEqual(reader.messages.filter((m) => m.id).map((m) => m.id), log.data.map((e: { id: string }) => e.id));
  assert.deepEqual((await readerClients(job.id)), [], 'the reader stops with the job');
});

test('Last-Event-ID (or ?after=) resumes after that event; after the terminal event the answer is 204', async () => {
  const job = await ops.job();
  await ops.jobs.transition(job.id, 'running', { attempts: 1 });
  for (let step = 1; step <= 4; step++) await ops.jobs.appendEvent(job.id, progress(step));
  const all = ((await (await ops.api(`/v1/jobs/${job.id}/events?limit=100`)).json()) as { data: unknown }).data as Array<{ id: string; type: string }>;
  const third = all[2]!.id;

  const resumed = new SseReader(`${ops.url}/v1/jobs/${job.id}/events`, { ...auth(), 'last-event-id': third });
  await resumed.until(() => resumed.messages.length >= 3);
  assert.deepEqual(resumed.messages.map((m) => m.id), all.slice(3).map((e) => e.id));
  const viaQuery = new SseReader(`${ops.url}/v1/jobs/${job.id}/events?after=${all[4]!.id}`, auth());
  await viaQuery.until(() => viaQuery.messages.length >= 1);
  assert.deepEqual(viaQuery.messages.map((m) => m.id), [all[5]!.id]);

  await ops.jobs.transition(job.id, 'cancelling', {});
  await ops.jobs.transition(job.id, 'cancelled', { finished_at: new Date().toISOString() });
  await Promise.all([resumed.finished, viaQuery.finished]);
  assert.equal(resumed.messages.at(-1)!.event, 'end');
  const lastId = resumed.messages.filter((m) => m.id).at(-1)!.id!;

  const again = await fetch(`${ops.url}/v1/jobs/${job.id}/events`, { headers: { ...auth(), accept: 'text/event-stream', 'last-event-id': lastId } });
  assert.equal(again.status, 204, 'an EventSource stops reconnecting on 204');
  // A job that already ended streams its whole log and closes.
  const late = new SseReader(`${ops.url}/v1/jobs/${job.id}/events`, auth());
  await late.finished;
  assert.equal(late.messages.filter((m) => m.id).length, all.length + 2);
  assert.equal(late.messages.at(-1)!.event, 'end');
});

test('without Accept: text/event-stream the route answers the JSON page; bad cursors and other tenants are refused', async () => {
  const job = await ops.job();
  const json = await ops.api(`/v1/jobs/${job.id}/events`);
  assert.equal(json.status, 200);
  assert.match(json.headers.get('content-type') ?? '', /application\/json/);
  const bad = await fetch(`${ops.url}/v1/jobs/${job.id}/events`, { headers: { ...auth(), accept: 'text/event-stream', 'last-event-id': 'nope' } });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'Last-Event-ID');
  const other = await fetch(`${ops.url}/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${ops.otherKey}`, accept: 'text/event-stream' } });
  assert.equal(other.status, 404);
  const anonymous = await fetch(`${ops.url}/v1/jobs/${job.id}/events`, { headers: { accept: 'text/event-stream' } });
  assert.equal(anonymous.status, 401);
});

test('many watchers of one job share ONE Redis reader (CLIENT LIST), which goes when the last leaves', async () => {
  const job = await ops.job();
  await ops.jobs.transition(job.id, 'running', { attempts: 1 });
  const N = 8;
  const watchers = Array.from({ length: N }, () => new SseReader(`${ops.url}/v1/jobs/${job.id}/events`, auth()));
  await Promise.all(watchers.map((w) => w.until(() => w.messages.length >= 2)));
  // The backlog reaches a watcher before the shared reader's connection has named itself and
  // blocked in XREAD: wait for it to show, then count.
  let clients = await readerClients(job.id);
  for (let i = 0; i < 50 && !clients.some((c) => /cmd=xread/.test(c)); i++) {
    await sleep(100);
    clients = await readerClients(job.id);
  }
  assert.equal(clients.length, 1, `one reader for ${N} watchers:\n${clients.join('\n')}`);
  assert.match(clients[0]!, /cmd=xread/);
  assert.equal(ops.app.jobEvents.readerCount, 1);

  for (let step = 1; step <= 5; step++) await ops.jobs.appendEvent(job.id, progress(step));
  await Promise.all(watchers.map((w) => w.until(() => w.messages.length >= 7)));
  const ids = watchers[0]!.messages.map((m) => m.id);
  for (const w of watchers) assert.deepEqual(w.messages.map((m) => m.id), ids, 'every watcher gets every event once, in order');

  // A second job's watchers get a reader of their own.
  const job2 = await ops.job();
  const w2 = new SseReader(`${ops.url}/v1/jobs/${job2.id}/events`, auth());
  await w2.until(() => w2.messages.length >= 1);
  assert.equal(ops.app.jobEvents.readerCount, 2);
  const metrics = await (await fetch(`${ops.url}/metrics`)).text();
  assert.match(metrics, /^makam_event_stream_readers 2$/m);

  for (const w of [...watchers, w2]) w.close();
  for (let i = 0; i < 50 && ((await readerClients(job.id)).length > 0 || ops.app.jobEvents.readerCount > 0); i++) await sleep(100);
  assert.deepEqual(await readerClients(job.id), [], 'the reader closes with its last watcher');
  assert.equal(ops.app.jobEvents.readerCount, 0);
});
