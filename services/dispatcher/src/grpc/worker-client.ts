// The dispatcher's view of one Python training worker.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { WorkerService } from '@makam/shared/gen/makam/worker/v1/worker_pb.js';
import { createPromiseClient } from './adapter.ts';
import { workerInterceptors } from '../tracing.ts';

/** PEM files for TLS to the workers; with cert and key it is mutual TLS. */
export interface WorkerTls {
  ca?: string;
  cert?: string;
  key?: string;
  /** Overrides the name checked against the worker's certificate. */
  serverName?: string;
}

/** Channel credentials: plaintext without a CA, else TLS (mTLS with a client pair). */
export function workerCredentials(tls: WorkerTls = {}): grpc.ChannelCredentials {
  if (!tls.ca) {
    if (tls.cert || tls.key) throw new Error('MAKAM_GRPC_TLS_CERT/KEY need MAKAM_GRPC_TLS_CA (the workers\' CA) too');
    return grpc.credentials.createInsecure();
  }
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new Error('set both MAKAM_GRPC_TLS_CERT and MAKAM_GRPC_TLS_KEY, or neither');
  return grpc.credentials.createSsl(readFileSync(tls.ca), tls.key ? readFileSync(tls.key) : null, tls.cert ? readFileSync(tls.cert) : null);
}

/** Opens a client to the worker at `address`; keepalive detects a worker that stops answering. */
export function connectWorker(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), { keepaliveMs = 15_000, serverName }: { keepaliveMs?: number; serverName?: string } = {}) {
  return createPromiseClient(WorkerService, address, credentials, {
    ...(serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {}),
    'grpc.keepalive_time_ms': keepaliveMs,
    'grpc.keepalive_timeout_ms': Math.min(10_000, keepaliveMs),
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    interceptors: workerInterceptors(), // a span per call of a traced job, its context in the metadata
  });
}

export type WorkerClient = ReturnType<typeof connectWorker>;
