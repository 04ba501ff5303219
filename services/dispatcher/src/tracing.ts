// The dispatcher's part of a job's trace (services/shared/src/tracing.ts sets tracing up): the
// processing of a job as a child of the API's enqueue (context from the job data), a client span
// per gRPC call to a worker with its context in the call's `traceparent` metadata, and the worker's
// run phases (PhaseSpan events; the Python worker has no OpenTelemetry SDK) recorded here as spans
// with the worker's own start and end times.
import * as grpc from '@grpc/grpc-js';
import type { Job } from 'bullmq';
import { ROOT_CONTEXT, context, propagation, trace } from '@opentelemetry/api';
import { SpanKind, SpanStatusCode, extractTrace, hrTimeFromNanos, tracer, tracingStarted, withSpan } from '@makam/shared/tracing';
import type { TrainJobData } from '@makam/shared/queues';
import type { PhaseSpan } from '@makam/shared/gen/makam/worker/v1/worker_pb.js';

/** Runs `fn` as the job's processing span, under the context the API put in the job's data. */
export function traceJob<T>(job: Job<TrainJobData>, fn: () => Promise<T>): Promise<T> {
  if (!tracingStarted()) return fn();
  const attributes = { 'messaging.system': 'bullmq', 'messaging.destination.name': job.queueName, 'messaging.operation.type': 'process', 'makam.job.id': job.data.jobId, 'makam.attempt': job.attemptsMade + 1 };
  return withSpan(`process ${job.queueName}`, { kind: SpanKind.CONSUMER, attributes }, fn, extractTrace(job.data.trace as Record<string, unknown> | undefined));
}

/**
 * A client span per call made within a traced job (calls outside one, such as the capability
 * polls, make none), its context sent to the worker as `traceparent` metadata.
 */
export const tracingInterceptor: grpc.Interceptor = (options, nextCall) => {
  const parent = context.active();
  if (!trace.getSpan(parent)?.isRecording()) return new grpc.InterceptingCall(nextCall(options));
  const path = options.method_definition.path; // /makam.worker.v1.WorkerService/StartRun
  const [service, method] = path.slice(1).split('/');
  const span = tracer.startSpan(path.slice(1), { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method } }, parent);
  return new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      const carrier: Record<string, string> = {};
      propagation.inject(trace.setSpan(parent, span), carrier);
      for (const [key, value] of Object.entries(carrier)) metadata.set(key, value);
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          span.setAttribute('rpc.grpc.status_code', status.code);
          if (status.code !== grpc.status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: status.details });
          span.end();
          nextStatus(status);
        },
      });
    },
  });
};

/** The interceptors a worker client takes: none unless this process exports traces. */
export function workerInterceptors(): grpc.Interceptor[] {
  return tracingStarted() ? [tracingInterceptor] : [];
}

/** Runs `fn` outside any trace: periodic probes would add a span every few seconds of a long run. */
export function untraced<T>(fn: () => T): T {
  return tracingStarted() ? context.with(ROOT_CONTEXT, fn) : fn();
}

/** Records one of the worker's run phases as a child of the active span (the job's processing). */
export function recordPhase(phase: PhaseSpan, attributes: Record<string, string | number | boolean>): void {
  if (!tracingStarted() || phase.startTimeUnixNano === 0n) return;
  const fields: Record<string, string | number | boolean> = { ...attributes };
  for (const [key, value] of Object.entries(phase.attributes ?? {})) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') fields[`makam.${key}`] = value;
  }
  const span = tracer.startSpan(phase.name, { kind: SpanKind.INTERNAL, startTime: hrTimeFromNanos(phase.startTimeUnixNano), attributes: fields });
  if (phase.error) span.setStatus({ code: SpanStatusCode.ERROR, message: phase.error });
  span.end(hrTimeFromNanos(phase.endTimeUnixNano));
}
