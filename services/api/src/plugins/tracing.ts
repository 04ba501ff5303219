// The request span of a job's trace (services/shared/src/tracing.ts): one SERVER span per request,
// a child of the caller's `traceparent` when it sends one, made the active context for the route's
// handler so that what the handler does (the enqueue) is its child. Registered only when tracing
// is on: without an OTLP endpoint the API adds no hook at all.
import fp from 'fastify-plugin';
import { context, trace, type Context, type Span } from '@opentelemetry/api';
import { SpanKind, SpanStatusCode, extractTrace, tracer, tracingStarted } from '@makam/shared/tracing';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's span and its context; null when tracing is off. */
    trace: { span: Span; context: Context } | null;
  }
}

export default fp(
  async (app) => {
    if (!tracingStarted()) return;
    app.decorateRequest('trace', null);
    app.addHook('onRequest', (request, _reply, done) => {
      const parent = extractTrace(request.headers);
      const route = request.routeOptions.url;
      const span = tracer.startSpan(route ? `${request.method} ${route}` : request.method, {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': request.method, 'url.path': request.url.split('?')[0], ...(route ? { 'http.route': route } : {}) },
      }, parent);
      request.trace = { span, context: trace.setSpan(parent, span) };
      done();
    });
    // The handler runs from the last preHandler's `done`, after the body is read (whose stream
    // events would have left any context set in onRequest), so this is where the context is entered.
    app.addHook('preHandler', (request, _reply, done) => {
      if (request.trace) context.with(request.trace.context, done);
      else done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      const span = request.trace?.span;
      if (span) {
        span.setAttribute('http.response.status_code', reply.statusCode);
        if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      done();
    });
    app.addHook('onRequestAbort', (request, done) => {
      request.trace?.span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client went away' });
      request.trace?.span.end();
      request.trace = null; // ended once: onResponse may still run
      done();
    });
  },
  { name: 'tracing' },
);
