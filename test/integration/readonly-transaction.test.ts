// A connection still open to a primary that was demoted (a failover) has its writes answered READONLY.
// A MULTI refused so is sent again whole, as a single write is: on a waiting connection until a
// primary takes it, applied exactly once; on a request's connection for MAKAM_REDIS_NOREPLICAS_WAIT_MS,
// then the refusal, which the API answers 503 no_primary. Real redis-server processes: a primary and
// a replica, whose roles the test swaps with REPLICAOF as the sentinels would.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createRedis, execTransaction, isReadOnly, isRefusedWrite } from '@makam/shared/redis';
import { createKey } from '../support/keys.ts';
import { freePort } from '../support/ports.ts';
import { uniquePrefix } from '../support/redis.ts';

const WAIT_MS = 1500;
let dir: string;
const children: ChildProcess[] = [];
let ports: [number, number];
let nodes: [Redis, Redis]; // straight to each node: no reconnect, no resend
let app: FastifyInstance;
let key: string;
let prefix: string;
const url = (port: number) => `redis://127.0.0.1:${port}`;

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
const linkUp = (node: Redis) => async () => /master_link_status:up/.test(await node.info('replication'));

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-readonly-'));
  ports = [await freePort(), await freePort()];
  for (const port of ports) {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--repl-ping-replica-period', '1'];
    const child = spawn('redis-server', port === ports[1] ? [...args, '--replicaof', '127.0.0.1', String(ports[0])] : args, { stdio: 'ignore' });
    child.on('error', () => {});
    children.push(child);
  }
  nodes = ports.map((port) => {
    const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
    r.on('error', () => {});
    return r;
  }) as [Redis, Redis];
  await until('the replica to be in sync', linkUp(nodes[1]), 20_000);
  prefix = uniquePrefix();
  // The API is on the first node, which the last test demotes.
  app = await buildApp(loadApiConfig({ REDIS_URL: url(ports[0]), MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: path.join(dir, 'store'), MAKAM_REDIS_NOREPLICAS_WAIT_MS: String(WAIT_MS) }));
  await app.ready(); // its onReady writes (the webhook notifier's consumer group) go to a primary
  key = await createKey(url(ports[0]), prefix, 'acme');
});
after(async () => {
  // The failover over, and time for the API's waiting connections to reconnect (retryStrategy, up to
  // 2 s): a BullMQ Worker's own blocking connection (its duplicate, not createRedis's, so without
  // settleOnDisconnect) closed while it waits to resend a READONLY write keeps worker.close() pending.
  await nodes?.[0].replicaof('NO', 'ONE').catch(() => undefined);
  await sleep(3000);
  await app?.close();
  for (const node of nodes ?? []) node.disconnect();
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a MULTI refused with READONLY on a waiting connection is sent again whole and applied exactly once when the node is promoted', { timeout: 60_000 }, async () => {
  const counter = `${prefix}:readonly-test:counter`;
  const list = `${prefix}:readonly-test:list`;
  // A dispatcher's or background connection (no noReplicasWaitMs) to the replica: its writes answer
  // READONLY, as a demoted primary's do.
  const waiting = createRedis(url(ports[1]));
  waiting.on('error', () => {});
  try {
    let outcome = 'pending';
    // Not idempotent: applied in part and sent again, it would count twice.
    const counted = execTransaction(waiting, () => waiting.multi().incr(counter).rpush(list, 'x')).then(
      (replies) => (outcome = `written ${JSON.stringify(replies)}`),
      (err: Error & { previousErrors?: Error[] }) => (outcome = `refused: ${err.message} ${(err.previousErrors ?? []).map((e) => e.message).join('; ')}`),
    );
    await sleep(1000);
    assert.equal(outcome, 'pending', 'the MULTI waits for a primary');
    assert.equal(await nodes[1].get(counter), null, 'nothing of it applied on the replica');
    const promoted = Date.now();
    await nodes[1].replicaof('NO', 'ONE');
    await counted;
    console.log(`readonly: the waiting MULTI was written ${Date.now() - promoted} ms after the promotion`);
    assert.equal(outcome, 'written [[null,1],[null,1]]');
  } finally {
    waiting.disconnect();
  }
  assert.equal(await nodes[1].get(counter), '1', 'the MULTI applied exactly once');
  assert.deepEqual(await nodes[1].lrange(list, 0, -1), ['x']);
});

test('a request\'s MULTI refused with READONLY gives up after noReplicasWaitMs with the READONLY refusal; a submission answers 503 no_primary with Retry-After', { timeout: 60_000 }, async () => {
  // The second node is primary now (the test before); the first, the API's, becomes its replica.
  await nodes[0].replicaof('127.0.0.1', String(ports[1]));
  await until('the demoted node to be in sync', linkUp(nodes[0]), 20_000);
  const counter = `${prefix}:readonly-test:request-counter`;
  const request = createRedis(url(ports[0]), { noReplicasWaitMs: WAIT_MS });
  request.on('error', () => {});
  try {
    const t0 = Date.now();
    const refused = await execTransaction(request, () => request.multi().incr(counter).rpush(counter + ':list', 'x')).catch((err: Error) => err);
    const ms = Date.now() - t0;
    assert.ok(refused instanceof Error && isReadOnly(refused) && isRefusedWrite(refused), `refused with READONLY, not another cause (${String(refused)})`);
    assert.ok(ms >= WAIT_MS - 200 && ms < WAIT_MS + 3000, `sent again for about the bound (${ms} ms, noReplicasWaitMs ${WAIT_MS})`);
    console.log(`readonly: the request's MULTI was refused after ${ms} ms (noReplicasWaitMs ${WAIT_MS})`);
  } finally {
    request.disconnect();
  }
  assert.equal(await nodes[1].get(counter), null, 'nothing of it applied');

  const t0 = Date.now();
  const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: 'ds_none', hyperparameters: {} } });
  const ms = Date.now() - t0;
  assert.equal(res.statusCode, 503, res.body);
  const body = res.json();
  assert.equal(body.error.code, 'no_primary');
  assert.match(body.error.message, /READONLY/);
  assert.match(body.error.message, /MAKAM_REDIS_NOREPLICAS_WAIT_MS/);
  assert.ok(Number(res.headers['retry-after']) >= 1, `a Retry-After (${res.headers['retry-after']})`);
  assert.ok(ms < WAIT_MS + 3000, `answered within the bound (${ms} ms)`);
  console.log(`readonly: the submission answered 503 no_primary in ${ms} ms`);
});
