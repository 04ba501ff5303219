// `node docker/await-workers.ts [MODULE]`: waits until every worker in MAKAM_WORKERS answers
// GetCapabilities, then imports MODULE (the dispatcher's main.ts) in this same process.
//
// A dispatcher takes jobs as soon as it starts, and a job handed to a worker that does not answer
// yet (a container still booting, a pod scaled up from zero) fails its attempt. Starting the
// dispatcher only once its workers answer avoids that. MAKAM_AWAIT_WORKERS_S bounds the wait
// (default 600; 0 skips it); past it the process exits 1 and its supervisor starts it again.
// It speaks to the workers as the dispatcher does: TLS from MAKAM_GRPC_TLS_CA, _CERT, _KEY and
// _SERVER_NAME when they are set.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { connectWorker, workerCredentials, type WorkerTls } from '../services/dispatcher/src/grpc/worker-client.ts';

export interface AwaitOptions {
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** Pause between tries. */
  intervalMs?: number;
  /** Deadline of one GetCapabilities call (the worker's first one imports torch). */
  callTimeoutMs?: number;
  log?: (line: string) => void;
  /** TLS to the workers, as the dispatcher speaks it (MAKAM_GRPC_TLS_*); plaintext without a CA. */
  tls?: WorkerTls;
}

/** Resolves once each address answers GetCapabilities; rejects naming those that never did. */
export async function awaitWorkers(addresses: string[], options: AwaitOptions): Promise<void> {
  const { timeoutMs, intervalMs = 1000, callTimeoutMs = 20_000, log = () => {}, tls = {} } = options;
  const credentials = workerCredentials(tls);
  const deadline = Date.now() + timeoutMs;
  const waiting = new Set(addresses);
  while (waiting.size > 0) {
    for (const address of [...waiting]) {
      const client = connectWorker(address, credentials, { serverName: tls.serverName });
      try {
        const caps = await client.getCapabilities({}, { timeoutMs: Math.max(1, Math.min(callTimeoutMs, deadline - Date.now())) });
        log(`worker ${address} answers: ${caps.workerId} on ${caps.gpuName || caps.device}`);
        waiting.delete(address);
      } catch {
        // not up yet
      } finally {
        client.close();
      }
    }
    if (waiting.size === 0) return;
    if (Date.now() + intervalMs > deadline) {
      throw new Error(`workers not answering after ${Math.round(timeoutMs / 1000)} s: ${[...waiting].join(', ')}`);
    }
    await sleep(intervalMs);
  }
}

function log(line: string): void {
  process.stderr.write(`${JSON.stringify({ time: Date.now(), name: 'makam-await-workers', msg: line })}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  const seconds = Number(process.env.MAKAM_AWAIT_WORKERS_S ?? 600);
  const addresses = (process.env.MAKAM_WORKERS ?? '127.0.0.1:50051').split(',').filter(Boolean);
  if (!Number.isFinite(seconds) || seconds < 0) {
    log(`MAKAM_AWAIT_WORKERS_S must be a number of seconds >= 0, not ${process.env.MAKAM_AWAIT_WORKERS_S}`);
    process.exit(1);
  }
  if (seconds > 0) {
    log(`waiting up to ${seconds} s for ${addresses.join(', ')}`);
    try {
      const env = process.env;
      const tls = { ca: env.MAKAM_GRPC_TLS_CA, cert: env.MAKAM_GRPC_TLS_CERT, key: env.MAKAM_GRPC_TLS_KEY, serverName: env.MAKAM_GRPC_TLS_SERVER_NAME };
      await awaitWorkers(addresses, { timeoutMs: seconds * 1000, log, tls });
    } catch (err) {
      log((err as Error).message);
      process.exit(1);
    }
  }
  const next = process.argv[2];
  if (next) await import(pathToFileURL(path.resolve(next)).href);
}
