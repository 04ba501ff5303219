// Mutual TLS between dispatcher and worker, configured by files: a real Python worker with a
// certificate and a client CA; only a client with a certificate from that CA gets through.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectWorker, workerCredentials } from '../../services/dispatcher/src/grpc/worker-client.ts';
import { freePort } from '../support/ports.ts';
import { PYTHON, ROOT } from '../support/stack.ts';

let dir: string;
let worker: ChildProcess;
let address: string;
const f = (name: string) => path.join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a worker certificate for 127.0.0.1/localhost, a client certificate, and a stranger's. */
async function makeCertificates(): Promise<void> {
  await writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`);
  }
  const issue = (name: string, ca: string, ext?: string) => {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', ...(ext ? ['-extfile', ext] : []));
  };
  issue('worker', 'ca', 'san.ext');
  issue('dispatcher', 'ca');
  issue('stranger', 'other-ca');
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'makam-tls-'));
  await makeCertificates();
  address = `127.0.0.1:${await freePort()}`;
  worker = spawn(PYTHON, ['-m', 'makam_worker', '--listen', address, '--state-dir', f('state')], {
    cwd: ROOT,
    env: { ...process.env, MAKAM_WORKER_TLS_CERT: f('worker.pem'), MAKAM_WORKER_TLS_KEY: f('worker.key'), MAKAM_WORKER_TLS_CLIENT_CA: f('ca.pem') },
    stdio: 'ignore',
  });
  const client = connectWorker(address, workerCredentials({ ca: f('ca.pem'), cert: f('dispatcher.pem'), key: f('dispatcher.key') }));
  for (let i = 0; ; i++) {
    try {
      await client.getCapabilities({}, { timeoutMs: 1000 });
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(200);
    }
  }
  client.close();
});
after(() => {
  worker?.kill('SIGKILL');
});

test('a dispatcher with a client certificate from the CA is served', async () => {
  const client = connectWorker(address, workerCredentials({ ca: f('ca.pem'), cert: f('dispatcher.pem'), key: f('dispatcher.key') }));
  try {
    const caps = await client.getCapabilities({}, { timeoutMs: 5000 });
    assert.ok(caps.families.includes('encoder'));
  } finally {
    client.close();
  }
});

test('without a client certificate, with a stranger\'s, or in plaintext the worker refuses', async () => {
  const attempts = {
    'no client certificate': workerCredentials({ ca: f('ca.pem') }),
    "another CA's certificate": workerCredentials({ ca: f('ca.pem'), cert: f('stranger.pem'), key: f('stranger.key') }),
    plaintext: workerCredentials({}),
  };
  for (const [what, credentials] of Object.entries(attempts)) {
    const client = connectWorker(address, credentials);
    try {
      await assert.rejects(client.getCapabilities({}, { timeoutMs: 3000 }), (err: { code?: number }) => typeof err.code === 'number', what);
    } finally {
      client.close();
    }
  }
});

test('the container health check probes a TLS worker as a dispatcher would', () => {
  const env = { ...process.env, MAKAM_GRPC_TLS_CA: f('ca.pem'), MAKAM_GRPC_TLS_CERT: f('dispatcher.pem'), MAKAM_GRPC_TLS_KEY: f('dispatcher.key') };
  execFileSync(PYTHON, ['-m', 'makam_worker.healthcheck', '--address', address], { cwd: ROOT, env, stdio: 'pipe' });
  assert.throws(() => execFileSync(PYTHON, ['-m', 'makam_worker.healthcheck', '--address', address, '--timeout', '2'], { cwd: ROOT, stdio: 'pipe' }), 'plaintext probe fails');
});

test('half a client pair is refused at start with a message', () => {
  assert.throws(() => workerCredentials({ ca: f('ca.pem'), cert: f('dispatcher.pem') }), /both MAKAM_GRPC_TLS_CERT and MAKAM_GRPC_TLS_KEY/);
  assert.throws(() => workerCredentials({ cert: f('dispatcher.pem'), key: f('dispatcher.key') }), /need MAKAM_GRPC_TLS_CA/);
});
