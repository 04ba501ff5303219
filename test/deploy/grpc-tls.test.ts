// The mutual-TLS recipe of the deployments, run for real on this machine: certificates from
// docker/grpc-certs.sh, a Python worker configured as the pool pods and docker/compose.mtls.yml
// configure it, its health check presenting the worker's own pair to 127.0.0.1, and
// docker/await-workers.ts reaching it as a dispatcher does (its pair, the name makam-worker).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { awaitWorkers } from '../../docker/await-workers.ts';
import { freePort } from '../support/ports.ts';
import { rel } from './helpers.ts';

const PYTHON = rel('workers-python/.venv/bin/python');
const missing = !existsSync(PYTHON) ? 'no workers-python/.venv (scripts/setup-python.sh makes it)' : spawnSync('openssl', ['version']).status !== 0 ? 'no openssl' : null;

let dir = '';
let worker: ChildProcess | undefined;
let port = 0;
const f = (name: string) => path.join(dir, 'tls', name);

before(async () => {
  if (missing) return;
  dir = mkdtempSync(path.join(tmpdir(), 'makam-deploy-tls-'));
  const made = spawnSync('sh', [rel('docker/grpc-certs.sh'), path.join(dir, 'tls'), '2'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  port = await freePort();
  worker = spawn(PYTHON, ['-m', 'makam_worker', '--state-dir', path.join(dir, 'state')], {
    env: {
      ...process.env,
      MAKAM_WORKER_LISTEN: `0.0.0.0:${port}`,
      MAKAM_WORKER_TLS_CERT: f('worker.crt'),
      MAKAM_WORKER_TLS_KEY: f('worker.key'),
      MAKAM_WORKER_TLS_CLIENT_CA: f('ca.crt'),
    },
    stdio: 'ignore',
  });
  // up once the dispatcher's view of it answers
  await awaitWorkers([`127.0.0.1:${port}`], { timeoutMs: 60_000, intervalMs: 200, tls: { ca: f('ca.crt'), cert: f('dispatcher.crt'), key: f('dispatcher.key'), serverName: 'makam-worker' } });
});

after(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker!.once('exit', r));
    worker.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function healthcheck(env: Record<string, string>) {
  return spawnSync(PYTHON, ['-m', 'makam_worker.healthcheck', '--timeout', '10'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH!, MAKAM_WORKER_LISTEN: `0.0.0.0:${port}`, ...env },
    timeout: 30_000,
  });
}

test('the worker health check passes with the worker\'s own pair, as the probes run it', (t) => {
  if (missing) return t.skip(missing);
  const r = healthcheck({ MAKAM_GRPC_TLS_CA: f('ca.crt'), MAKAM_GRPC_TLS_CERT: f('worker.crt'), MAKAM_GRPC_TLS_KEY: f('worker.key') });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^healthy: 127\.0\.0\.1:/);
});

test('without a client certificate, or in plaintext, the worker refuses', (t) => {
  if (missing) return t.skip(missing);
  assert.equal(healthcheck({}).status, 1, 'plaintext');
  assert.equal(healthcheck({ MAKAM_GRPC_TLS_CA: f('ca.crt') }).status, 1, 'TLS without a client certificate');
});

test('await-workers reaches it as a dispatcher: the dispatcher pair, the name makam-worker', async (t) => {
  if (missing) return t.skip(missing);
  const tls = { ca: f('ca.crt'), cert: f('dispatcher.crt'), key: f('dispatcher.key') };
  await awaitWorkers([`127.0.0.1:${port}`], { timeoutMs: 10_000, tls: { ...tls, serverName: 'makam-worker' } });
  // the name is what makes it work: the certificate does not name whoever dials a pod's IP
  await assert.rejects(awaitWorkers([`127.0.0.1:${port}`], { timeoutMs: 1000, intervalMs: 200, callTimeoutMs: 500, tls: { ...tls, serverName: 'some-pod' } }));
});
