// Redis behind an ACL user with a password, as the deployment configures it: the API and BullMQ
// work through REDIS_URL's credentials, a wrong password fails at once, and no log line shows it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from '../support/keys.ts';
import { freePort } from '../support/ports.ts';
import { uniquePrefix } from '../support/redis.ts';

const PASSWORD = 'correct-horse-battery-staple-42';
let server: ChildProcess;
let port: number;

before(async () => {
  port = await freePort();
  // The default user is off; only `makam` with its password may connect.
  const conf = path.join(await mkdtemp(path.join(tmpdir(), 'makam-acl-conf-')), 'redis.conf');
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\nsave ""\nappendonly no\nuser default off\nuser makam on >${PASSWORD} ~* &* +@all\n`);
  server = spawn('redis-server', [conf], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const r = new Redis({ port, username: 'makam', password: PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      break;
    } catch {
      r.disconnect();
      if (i > 100) throw new Error('redis with ACL did not start');
      await sleep(50);
    }
  }
});
after(() => {
  server?.kill('SIGKILL');
});

test('the API works through an ACL user and password in REDIS_URL, and never logs them', async () => {
  let logs = '';
  const prefix = uniquePrefix();
  const url = `redis://makam:${PASSWORD}@127.0.0.1:${port}`;
  const app = await buildApp(
    loadApiConfig({ REDIS_URL: url, MAKAM_REDIS_PREFIX: prefix, MAKAM_QUEUE_PREFIX: `${prefix}-q`, MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-acl-')) }),
    pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => ((logs += c.toString()), cb()) })),
  );
  try {
    const key = await createKey(url, prefix, 'acl');
    const auth = { authorization: `Bearer ${key}` };
    const ds = await app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...auth, 'content-type': 'application/jsonl' }, payload: '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n' });
    assert.equal(ds.statusCode, 201, ds.body);
    const job = await app.inject({ method: 'POST', url: '/v1/jobs', headers: auth, payload: { kind: 'finetune', model: { family: 'tfidf' }, dataset: ds.json().id } });
    assert.equal(job.statusCode, 202, job.body);
    assert.ok(await app.queues.get('cpu')!.getJob(job.json().id), 'BullMQ enqueued through the same credentials');
    assert.ok(!logs.includes(PASSWORD), 'the password is in no log line');
  } finally {
    await app.close();
  }
});

test('a wrong password is refused by Redis', async () => {
  const r = new Redis(`redis://makam:wrong@127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  const errors: string[] = [];
  r.on('error', (err) => errors.push(err.message));
  await assert.rejects(r.connect().then(() => r.ping()));
  r.disconnect();
  assert.match(errors.join(' '), /WRONGPASS|NOAUTH/);
});
