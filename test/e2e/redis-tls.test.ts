// Redis over TLS, as a deployment runs it: a redis-server with only a TLS port, which asks every
// client for a certificate (tls-auth-clients yes) and has an ACL user with a password. The API, a
// dispatcher, a Python worker and the dispatcher's study process (`python -m makam_study`, redis-py)
// all work through a rediss:// URL with MAKAM_REDIS_TLS_CA and a client pair; plaintext, a client
// without the CA, without a certificate or with a stranger's certificate are refused; no log line
// holds the password or the client key.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { createRedis, type RedisSettings } from '@makam/shared/redis';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { loadDispatcherConfig } from '../../services/dispatcher/src/config.ts';
import { freePort } from '../support/ports.ts';
import { startStack, type Stack } from '../support/stack.ts';

const PASSWORD = 'tls-horse-battery-staple-77';
let dir: string;
let server: ChildProcess;
let port: number;
let settings: RedisSettings;
let stack: Stack | undefined;
const f = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA; the server's certificate for 127.0.0.1/localhost; a client pair; a stranger's pair from another CA. */
async function makeCertificates(): Promise<void> {
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`);
  }
  const issue = (name: string, ca: string, ext: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', ext);
  };
  issue('server', 'ca', 'server.ext');
  issue('client', 'ca', 'client.ext');
  issue('stranger', 'other-ca', 'client.ext');
}

/** One connection attempt with no retries: resolves on PONG, rejects with the error. */
async function tryPing(url: string, options: RedisOptions = {}): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000, ...options });
  let lastError: Error | undefined;
  r.on('error', (err) => (lastError = err));
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    throw lastError ?? err;
  } finally {
    r.disconnect();
  }
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-redis-tls-'));
  await makeCertificates();
  port = await freePort();
  // No plaintext port at all; the default user is off; every client shows a certificate from ca.pem.
  await writeFile(
    f('redis.conf'),
    [
      'port 0',
      `tls-port ${port}`,
      'bind 127.0.0.1',
      `tls-cert-file ${f('server.pem')}`,
      `tls-key-file ${f('server.key')}`,
      `tls-ca-cert-file ${f('ca.pem')}`,
      'tls-auth-clients yes',
      'save ""',
      'appendonly no',
      'maxmemory-policy noeviction',
      'user default off',
      `user makam on >${PASSWORD} ~* &* +@all`,
      '',
    ].join('\n'),
  );
  server = spawn('redis-server', [f('redis.conf')], { stdio: 'ignore' });
  settings = { REDIS_URL: `rediss://makam:${PASSWORD}@127.0.0.1:${port}`, MAKAM_REDIS_TLS_CA: f('ca.pem'), MAKAM_REDIS_TLS_CERT: f('client.pem'), MAKAM_REDIS_TLS_KEY: f('client.key') };
  const tls = { ca: await readFile(f('ca.pem')), cert: await readFile(f('client.pem')), key: await readFile(f('client.key')) };
  for (let i = 0; ; i++) {
    try {
      await tryPing(settings.REDIS_URL, { tls });
      break;
    } catch (err) {
      if (i > 100) throw new Error(`redis-server with TLS did not start: ${(err as Error).message}`);
      await sleep(100);
    }
  }
});
after(async () => {
  await stack?.stop();
  server?.kill('SIGKILL');
});

test('this redis-server speaks only TLS: plaintext, an unknown CA, no client certificate and a stranger\'s are refused', { timeout: 60_000 }, async () => {
  // Plaintext to the TLS port: never a Redis answer.
  const answer = await new Promise<string>((resolve) => {
    let got = '';
    const sock = net.connect(port, '127.0.0.1', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => resolve(got));
    sock.on('close', () => resolve(got));
    setTimeout(() => (sock.destroy(), resolve(got)), 3000);
  });
  assert.doesNotMatch(answer, /PONG/, 'no Redis answer over plaintext');
  await assert.rejects(tryPing(`redis://makam:${PASSWORD}@127.0.0.1:${port}`), 'a plaintext client is refused');
  const ca = await readFile(f('ca.pem'));
  const client = { cert: await readFile(f('client.pem')), key: await readFile(f('client.key')) };
  // TLS without the CA: the server's certificate is not trusted.
  await assert.rejects(tryPing(settings.REDIS_URL, { tls: { ...client } }), /self.signed|unable to (get|verify)|certificate/i);
  // createRedis with the URL alone is the same client (the system's CAs).
  const bare = createRedis(settings.REDIS_URL);
  const bareError = new Promise<Error>((resolve) => bare.once('error', resolve));
  assert.match((await bareError).message, /self.signed|unable to (get|verify)|certificate/i);
  bare.disconnect();
  // The CA but no client certificate, or one from another CA: the server refuses.
  await assert.rejects(tryPing(settings.REDIS_URL, { tls: { ca } }));
  await assert.rejects(tryPing(settings.REDIS_URL, { tls: { ca, cert: await readFile(f('stranger.pem')), key: await readFile(f('stranger.key')) } }));
  // The wrong password over good TLS.
  await assert.rejects(tryPing(`rediss://makam:wrong@127.0.0.1:${port}`, { tls: { ca, ...client } }), /WRONGPASS|NOAUTH/);
});

test('TLS settings are checked at start and name the variable, never the URL', () => {
  const url = `redis://makam:${PASSWORD}@127.0.0.1:${port}`;
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail('the configuration was accepted');
  };
  let message = refusal(() => loadApiConfig({ REDIS_URL: url, MAKAM_REDIS_TLS_CA: f('ca.pem') }));
  assert.match(message, /MAKAM_REDIS_TLS_CA set, but REDIS_URL is not a rediss:\/\/ URL/);
  assert.ok(!message.includes(PASSWORD));
  message = refusal(() => loadDispatcherConfig({ REDIS_URL: settings.REDIS_URL, MAKAM_REDIS_TLS_CA: f('missing.pem') }));
  assert.match(message, /^MAKAM_REDIS_TLS_CA: cannot read .*missing\.pem \(ENOENT\)$/);
  message = refusal(() => loadDispatcherConfig({ REDIS_URL: settings.REDIS_URL, MAKAM_REDIS_TLS_CERT: f('client.pem') }));
  assert.match(message, /MAKAM_REDIS_TLS_CERT and MAKAM_REDIS_TLS_KEY go together/);
  const ok = loadApiConfig({ ...settings });
  assert.equal(ok.MAKAM_REDIS_TLS_KEY, f('client.key'));
});

test('API, dispatcher and the study process work through rediss:// with a CA file and a client certificate; no secret in a log line', { timeout: 600_000 }, async () => {
  const t0 = Date.now();
  // The study process's own lines show at debug.
  stack = await startStack(settings, { dispatcherEnv: { MAKAM_LOG_LEVEL: 'debug', MAKAM_TUNE_POLL_MS: '200' } });
  const s = stack;
  await s.withLogs(async () => {
    const upload = await s.uploadSample();
    assert.equal(upload.status, 201, JSON.stringify(upload.body));

    // A training job: queued through BullMQ, taken by the dispatcher, its events relayed, its model stored.
    const submit = await s.json('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'finetune', model: { family: 'tfidf' }, dataset: upload.body.id, hyperparameters: { test_fraction: 0.2 } }) });
    assert.equal(submit.status, 202, JSON.stringify(submit.body));
    const job = await s.finished(submit.body.id, 240_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    const model = await s.api(`/v1/jobs/${job.id}/artifacts/model`);
    assert.equal(model.status, 200);
    assert.equal(createHash('sha256').update(Buffer.from(await model.arrayBuffer())).digest('hex'), model.headers.get('x-makam-sha256'));
    const metrics = await s.json(`/v1/jobs/${job.id}/metrics`);
    assert.equal(metrics.status, 200);

    // A tune job: its study lives in this Redis, reached by the study process through redis-py.
    const tune = await s.json('/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'tune',
        model: { family: 'tfidf' },
        dataset: upload.body.id,
        hyperparameters: { validation_fraction: 0.2 },
        search: { space: { C: { type: 'float', low: 0.1, high: 10, log: true } }, objective: { metric: 'macro_f1', direction: 'maximize' }, trials: 2, parallelism: 1, sampler: 'random', pruner: 'none', seed: 0 },
      }),
    });
    assert.equal(tune.status, 202, JSON.stringify(tune.body));
    const tuned = await s.finished(tune.body.id, 300_000);
    assert.equal(tuned.status, 'succeeded', JSON.stringify(tuned.error));
    assert.equal(tuned.study?.complete, 2, JSON.stringify(tuned.study));
    assert.ok(tuned.best_trial, 'the study named its best trial');
    // The journal the study process wrote is there, read over TLS.
    const conn = createRedis(settings);
    try {
      const logs = await conn.keys(`${s.prefix}:study:${tuned.id}*`);
      assert.ok(logs.length > 0, 'the study journal is in Redis');
    } finally {
      conn.disconnect();
    }
  });
  const logs = s.logs();
  assert.match(logs, /study process/, 'the study process wrote log lines (shown at debug)');
  assert.ok(!logs.includes(PASSWORD), 'the password is in no log line');
  const keyBody = (await readFile(f('client.key'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('-----'));
  assert.ok(!keyBody.some((line) => logs.includes(line)), 'the client key is in no log line');
  console.log(`redis over TLS: a tfidf job and a 2-trial tune job through rediss:// in ${((Date.now() - t0) / 1000).toFixed(1)} s (stack start included)`);
});
