// The dispatcher's view of one Python training worker.
import * as grpc from '@grpc/grpc-js';
import { WorkerService } from '../gen/makam/worker/v1/worker_pb.js';
import { createPromiseClient } from './adapter.ts';

/** Opens a client to the worker at `address`; keepalive detects a worker that stops answering. */
export function connectWorker(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
  return createPromiseClient(WorkerService, address, credentials, {
    'grpc.keepalive_time_ms': 15_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });
}

export type WorkerClient = ReturnType<typeof connectWorker>;
