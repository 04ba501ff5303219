// One trace per job (OpenTelemetry): each process calls startTracing once at boot. With
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans go over OTLP/HTTP
// (JSON) to that collector; without it the SDK is never loaded, the tracer stays the API's no-op
// one, and withSpan/injectTrace return at their first line, so a request pays nothing for tracing.
// The trace context crosses processes in W3C `traceparent` form: in the BullMQ job data (`trace`)
// and in the gRPC metadata of every call to a worker.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type Span, type SpanOptions } from '@opentelemetry/api';

export { SpanKind, SpanStatusCode, type Context, type Span };

/** W3C Trace Context fields as they travel in job data and metadata. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** The tracer every makam span comes from; a no-op until startTracing registers a provider. */
export const tracer = trace.getTracer('makam');

export interface Tracing {
  /** True when spans are exported (an OTLP endpoint was configured). */
  readonly enabled: boolean;
  /** Exports the spans still buffered and stops the SDK; idempotent. */
  shutdown(): Promise<void>;
}

let started: Tracing | null = null;

/** The OTLP endpoint tracing exports to, or null when none is configured (tracing off). */
export function otlpTracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | null {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || null;
}

/** True once this process exports spans. */
export function tracingStarted(): boolean {
  return started?.enabled === true;
}

/**
 * Sets tracing up for the process as `serviceName` (OTEL_SERVICE_NAME overrides it). A second call
 * returns the first one's handle: the OpenTelemetry globals are one per process.
 */
export async function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (started) return started;
  if (!otlpTracesEndpoint(env) || env.OTEL_SDK_DISABLED === 'true') {
    started = { enabled: false, shutdown: async () => {} };
    return started;
  }
  // Loaded only here: a process without an endpoint never imports the SDK or the exporter.
  const [{ TracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, { W3CTraceContextPropagator }, { AsyncLocalStorageContextManager }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  // The 3.x BatchSpanProcessor no longer reads OTEL_BSP_*; the standard names are honoured here.
  const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME || serviceName }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), ...(Number.isFinite(delay) && delay > 0 ? { scheduledDelayMillis: delay } : {}) })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  let stopping: Promise<void> | null = null;
  started = {
    enabled: true,
    shutdown: () =>
      (stopping ??= provider.shutdown().finally(() => {
        trace.disable();
        propagation.disable();
        context.disable();
        started = null;
      })),
  };
  return started;
}

/**
 * Runs `fn` inside a new active span (a child of `parent`, else of the active context), ended when
 * `fn` settles and marked as an error when it throws. Without tracing, just `fn(undefined)`.
 */
export function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span | undefined) => Promise<T>, parent?: Context): Promise<T> {
  if (!started?.enabled) return fn(undefined);
  return tracer.startActiveSpan(name, options, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Queues a job as the `enqueue <queue>` span (a producer span, a child of the active one): `add`
 * gets the `trace` field for the job's data, undefined without tracing, so the dispatcher's
 * processing becomes its child. No Redis round trip of its own.
 */
export function traceEnqueue<T>(queue: string, jobId: string, add: (trace: TraceCarrier | undefined) => Promise<T>): Promise<T> {
  if (!started?.enabled) return add(undefined);
  const attributes = { 'messaging.system': 'bullmq', 'messaging.destination.name': queue, 'messaging.operation.type': 'send', 'makam.job.id': jobId };
  return withSpan(`enqueue ${queue}`, { kind: SpanKind.PRODUCER, attributes }, () => add(injectTrace()));
}

/** The active span's context as W3C fields, for a job's data; undefined without tracing or a span. */
export function injectTrace(ctx: Context = context.active()): TraceCarrier | undefined {
  if (!started?.enabled || !trace.getSpan(ctx)) return undefined;
  const carrier: TraceCarrier = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ? carrier : undefined;
}

/** The context a carrier (job data, HTTP headers) names, as a parent for spans; the root one without. */
export function extractTrace(carrier: Record<string, unknown> | undefined): Context {
  const root = ROOT_CONTEXT;
  if (!started?.enabled || !carrier) return root;
  return propagation.extract(root, carrier, {
    get: (c, key) => {
      const v = c[key];
      return typeof v === 'string' ? v : undefined;
    },
    keys: (c) => Object.keys(c),
  });
}

/** Unix nanoseconds (the worker's clock) as OpenTelemetry's [seconds, nanoseconds]. */
export function hrTimeFromNanos(nanos: bigint): [number, number] {
  return [Number(nanos / 1_000_000_000n), Number(nanos % 1_000_000_000n)];
}
