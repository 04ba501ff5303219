// The API as a Fastify plugin: tests build it and call it with inject; server.ts owns the process.
import { Transform } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import AjvCompiler from '@fastify/ajv-compiler';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '@makam/shared/logger';
import type { ApiConfig } from './config.ts';
import { ApiError, clientErrorResponse, frameworkError, registerErrorHandler } from './errors.ts';
import { trackRoutes } from './access.ts';
import { decodeUtf8, parseJsonBody } from './json-body.ts';
import underPressure from '@fastify/under-pressure';
import auth from './plugins/auth.ts';
import services from './plugins/services.ts';
import adminRoutes from './routes/admin/index.ts';
import dashboard from './plugins/dashboard.ts';
import liveEvents from './plugins/live-events.ts';
import metrics from './plugins/metrics.ts';
import openapi from './plugins/openapi.ts';
import queueBoard from './plugins/queue-board.ts';
import tracing from './plugins/tracing.ts';
import webhooks from './plugins/webhooks.ts';
import artifactFileRoutes from './routes/artifact-files/index.ts';
import eventStreamRoutes from './routes/events-stream/index.ts';
import webhookRoutes from './routes/webhooks/index.ts';
import workerRoutes from './routes/workers/index.ts';
import datasetRoutes from './routes/datasets/index.ts';
import jobRoutes from './routes/jobs/index.ts';
import ownedJob from './jobs/owned-job.ts';

/**
 * One log line per request rather than Fastify's two (pino's writes were ~6% of the API's CPU under
 * load in bench/api-profile.ts): no 'incoming request' line, and the completion line carries what it
 * had. Errors, 404s and stream faults are logged as Fastify logs them.
 *
 * With `summaryMs` > 0, a read that succeeded (GET or HEAD, status below 400) is counted instead,
 * one 'requests summary' line a route, API key and status every `summaryMs` (its log line was ~11%
 * of a GET's busy time; pollers send most of the requests and change nothing). Every write, refusal
 * and error keeps its own line: they are the audit trail. The counts are bounded by routes × keys.
 */
class OneLineLogController extends LogController {
  private readonly summaryMs: number;
  private reads = new Map<string, { fields: Record<string, string | number | null>; count: number; totalMs: number; maxMs: number }>();

  constructor(summaryMs: number) {
    super();
    this.summaryMs = summaryMs;
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) return super.requestCompleted(error, request, reply);
    if (this.summaryMs > 0 && reply.statusCode < 400 && (request.method === 'GET' || request.method === 'HEAD')) return this.countRead(request, reply);
    reply.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, remoteAddress: request.ip, responseTime: reply.elapsedTime }, 'request completed');
  }

  private countRead(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url ?? 'unmatched';
    const key = `${request.method} ${route} ${reply.statusCode} ${request.apiKeyId}`;
    const ms = reply.elapsedTime;
    const seen = this.reads.get(key);
    if (seen) {
      seen.count++;
      seen.totalMs += ms;
      seen.maxMs = Math.max(seen.maxMs, ms);
      return;
    }
    // The first read of its kind in the window: its own line too, so a new poller shows at once.
    this.reads.set(key, { fields: { tenant: request.tenant, keyId: request.apiKeyId, method: request.method, route, statusCode: reply.statusCode }, count: 0, totalMs: 0, maxMs: 0 });
    reply.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, remoteAddress: request.ip, responseTime: ms }, 'request completed');
  }

  /** Logs the reads counted since the last call (those after the first of each kind) and starts again. */
  flushReads(log: FastifyBaseLogger): void {
    const reads = this.reads;
    this.reads = new Map();
    for (const { fields, count, totalMs, maxMs } of reads.values()) {
      if (count > 0) log.info({ ...fields, count, meanResponseTime: totalMs / count, maxResponseTime: maxMs, windowMs: this.summaryMs }, 'requests summary');
    }
  }
}

export async function buildApp(config: ApiConfig, logger?: Logger): Promise<FastifyInstance> {
  // Unknown fields are refused, not silently dropped; defaults are filled in. Querystrings and
  // path parameters arrive as strings and are coerced to their schema's types; JSON bodies are
  // not: "Infinity" or "1e400" sent as a string is no number.
  // discriminator: POST /v1/jobs's body is one of several kinds (schemas/jobs.ts).
  const ajvOptions = { removeAdditional: false, useDefaults: true, allErrors: false, verbose: true, discriminator: true } as const;
  const validators = AjvCompiler();
  const headersTimeout = config.MAKAM_HEADERS_TIMEOUT_MS;
  if (config.MAKAM_REQUEST_TIMEOUT_MS > 0 && headersTimeout > config.MAKAM_REQUEST_TIMEOUT_MS) {
    throw new Error(`MAKAM_HEADERS_TIMEOUT_MS (${headersTimeout}) must not exceed MAKAM_REQUEST_TIMEOUT_MS (${config.MAKAM_REQUEST_TIMEOUT_MS}): headers are part of the request`);
  }
  const logController = new OneLineLogController(config.MAKAM_READ_LOG_SUMMARY_MS);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger | undefined,
    logController,
    bodyLimit: 1024 * 1024,
    trustProxy: trustProxy(config.MAKAM_TRUST_PROXY),
    // Slow clients: headers must arrive within headersTimeout, the whole request within
    // requestTimeout (both checked by Node every connectionsCheckingInterval), a body at a minimum
    // rate (below), and a silent socket is closed after connectionTimeout.
    connectionTimeout: config.MAKAM_SOCKET_IDLE_TIMEOUT_MS,
    keepAliveTimeout: config.MAKAM_KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: config.MAKAM_REQUEST_TIMEOUT_MS,
    http: {
      headersTimeout,
      requestTimeout: config.MAKAM_REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    // Refusals of the HTTP parser and of the router, in the one error shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable && socket.bytesWritten === 0) socket.write(clientErrorResponse(err));
      socket.destroy();
    },
    frameworkErrors: frameworkError,
    schemaController: {
      compilersFactory: {
        buildValidator: (externalSchemas, ajvServerOptions) => {
          const options = ajvServerOptions as unknown as { customOptions?: object; plugins?: unknown[] };
          const coercing = validators(externalSchemas as never, { ...options, customOptions: { ...ajvOptions, coerceTypes: 'array' } } as never);
          const strict = validators(externalSchemas as never, { ...options, customOptions: { ...ajvOptions, coerceTypes: false } } as never);
          return (route) => (route.httpPart === 'body' ? strict(route as never) : (finiteOnly(coercing(route as never)) as never));
        },
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  registerErrorHandler(app);
  if (config.MAKAM_READ_LOG_SUMMARY_MS > 0) {
    const summary = setInterval(() => logController.flushReads(app.log), config.MAKAM_READ_LOG_SUMMARY_MS);
    summary.unref();
    app.addHook('onClose', async () => {
      clearInterval(summary);
      logController.flushReads(app.log);
    });
  }
  // Before any route, so every route is in the route table with its access.
  trackRoutes(app as unknown as FastifyInstance);
  // JSON bodies: too deep, a non-finite number or a prototype key answer 400 naming where.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(decodeUtf8(body as Buffer), config.MAKAM_MAX_JSON_DEPTH));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  watchBodyRate(app as unknown as FastifyInstance, config.MAKAM_MIN_BODY_BYTES_PER_S, config.MAKAM_BODY_RATE_WINDOW_MS);
  await app.register(services, { config });
  // Before every route, so each is documented, timed and traced.
  await app.register(tracing);
  await app.register(openapi);
  await app.register(metrics);
  // Overload answers 503 early, before the body is read, instead of letting latency climb until the
  // process falls over. /healthz (liveness) and /metrics still answer: an overloaded process is
  // alive, restarting it would only lose its work, and operators need to see the load; /readyz
  // answers 503 like every other route, so a load balancer sends traffic elsewhere meanwhile.
  const retryAfter = config.MAKAM_PRESSURE_RETRY_AFTER_S;
  // Its event-loop figures are sampled from registration on, so the first samples after start-up
  // measure start-up itself (schemas compiled, plugins loaded: over a second on a loaded host, which
  // reads as "blocked for the whole interval"). Until two samples past ready, they refuse nothing.
  let readyAt = Infinity;
  app.addHook('onReady', async () => {
    readyAt = performance.now();
  });
  const startingUp = (type: string): boolean => (type === 'eventLoopDelay' || type === 'eventLoopUtilization') && performance.now() - readyAt < 2 * config.MAKAM_PRESSURE_SAMPLE_MS;
  await app.register(underPressure, {
    maxEventLoopDelay: config.MAKAM_MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: config.MAKAM_MAX_EVENT_LOOP_UTILIZATION,
    eventLoopUtilizationMode: 'interval',
    maxHeapUsedBytes: config.MAKAM_MAX_HEAP_USED_BYTES,
    maxRssBytes: config.MAKAM_MAX_RSS_BYTES,
    sampleInterval: config.MAKAM_PRESSURE_SAMPLE_MS,
    retryAfter,
    // A thrown error stops the request before any other hook and goes through the error handler,
    // so the 503 has the one error shape.
    pressureHandler: async (req, reply, type, value) => {
      if (req.routeOptions.url === '/healthz' || req.routeOptions.url === '/metrics') return; // served as usual
      if (startingUp(type)) return;
      reply.header('retry-after', String(retryAfter));
      throw new ApiError(503, 'overloaded', `the server is overloaded (${pressureFigure(type, value, config)}); retry in ${retryAfter} s`, null);
    },
  });
  // Authentication and rate limits, decided on each matched route's declared access.
  await app.register(auth);
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ ok: true }));
  app.get('/readyz', { config: { access: 'public' } }, async (_req, reply) => {
    try {
      await app.redis.ping();
      return { ok: true };
    } catch {
      return reply.code(503).send({ ok: false });
    }
  });
  await app.register(datasetRoutes, { prefix: '/v1/datasets' });
  // Every route that takes a job id loads it through app.ownedJob.
  await app.register(ownedJob);
  await app.register(jobRoutes, { prefix: '/v1/jobs' });
  // No admin key, no admin routes: nothing to guess at.
  if (config.MAKAM_ADMIN_KEY) await app.register(adminRoutes, { prefix: '/v1/admin' });
  // Live events (GET /v1/jobs/:id/events with Accept: text/event-stream), model files, webhooks,
  // workers; the queue board and the dashboard.
  await app.register(liveEvents);
  await app.register(eventStreamRoutes, { prefix: '/v1/jobs' });
  await app.register(artifactFileRoutes, { prefix: '/v1/jobs' });
  await app.register(webhooks);
  await app.register(webhookRoutes, { prefix: '/v1/webhooks' });
  await app.register(workerRoutes, { prefix: '/v1/workers' });
  await app.register(queueBoard);
  await app.register(dashboard);
  return app as unknown as FastifyInstance;
}

/** MAKAM_TRUST_PROXY as Fastify's trustProxy: off, on, a hop count or a list of addresses. */
function trustProxy(value: string): boolean | string[] | ((address: string, hop: number) => boolean) {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  if (/^[0-9]+$/.test(v)) {
    const hops = Number(v);
    return (_address, hop) => hop < hops;
  }
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Cuts a request body that arrives slower than `minBytesPerS` over any window of `windowMs` with
 * a 408 in the error shape, so a client trickling bytes cannot hold a connection (and its buffers)
 * for hours; a fast upload of any size is never cut. Node's requestTimeout stays the outer bound.
 */
function watchBodyRate(app: FastifyInstance, minBytesPerS: number, windowMs: number): void {
  if (minBytesPerS <= 0) return;
  const needed = Math.ceil((minBytesPerS * windowMs) / 1000);
  app.addHook('preParsing', async (request, reply, payload) => {
    const headers = request.raw.headers;
    if (headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) return payload;
    if (headers['content-length'] === '0') return payload;
    // The whole body has arrived already (a small one comes with the headers): nothing to watch,
    // and no stream and timer for every such request.
    if (request.raw.complete) return payload;
    let received = 0;
    let atLastCheck = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        (counted as unknown as { receivedEncodedLength: number }).receivedEncodedLength = received;
        callback(null, chunk);
      },
    });
    const timer = setInterval(() => {
      // Bytes waiting to be read mean the route is the slow one, not the client.
      const waiting = payload.readableLength + counted.readableLength + counted.writableLength;
      if (received - atLastCheck < needed && waiting === 0) {
        clearInterval(timer);
        reply.header('connection', 'close');
        counted.destroy(
          new ApiError(408, 'request_timeout', `the body arrived slower than ${minBytesPerS} bytes a second over ${windowMs} ms; send it faster`, 'body'),
        );
        return;
      }
      atLastCheck = received;
    }, windowMs);
    const stop = () => clearInterval(timer);
    payload.on('end', stop);
    payload.on('error', stop);
    payload.on('close', stop);
    counted.on('close', stop);
    // Answered before the body was read (413, 401 from a later hook): the watch ends with the response.
    reply.raw.on('close', stop);
    // A parser that stopped listening must not turn a late cut into an uncaught error.
    counted.on('error', () => {});
    return payload.pipe(counted);
  });
}

/** What under-pressure measured, against its limit, in words. */
function pressureFigure(type: string, value: number | undefined, config: ApiConfig): string {
  const v = value ?? NaN;
  switch (type) {
    case 'eventLoopDelay':
      // No delay sample at all in an interval: the loop was blocked for all of it.
      return Number.isFinite(v)
        ? `event-loop delay ${Math.round(v)} ms, limit ${config.MAKAM_MAX_EVENT_LOOP_DELAY_MS} ms`
        : `event loop blocked for over ${config.MAKAM_PRESSURE_SAMPLE_MS} ms, limit ${config.MAKAM_MAX_EVENT_LOOP_DELAY_MS} ms`;
    case 'eventLoopUtilization':
      return `event-loop utilization ${v.toFixed(2)}, limit ${config.MAKAM_MAX_EVENT_LOOP_UTILIZATION}`;
    case 'heapUsedBytes':
      return `heap used ${v} bytes, limit ${config.MAKAM_MAX_HEAP_USED_BYTES}`;
    case 'rssBytes':
      return `resident memory ${v} bytes, limit ${config.MAKAM_MAX_RSS_BYTES}`;
    default:
      return type;
  }
}

type Validate = ((data: unknown) => unknown) & { errors?: unknown };

/**
 * Coercion turns "Infinity", "-Infinity" or "1e400" in a querystring into a number no field can
 * use (Redis refuses COUNT Infinity): such a value is refused as the schema's own errors are.
 */
function finiteOnly(validate: Validate): Validate {
  const check: Validate = (data) => {
    const ok = validate(data);
    check.errors = validate.errors;
    if (ok !== true || data === null || typeof data !== 'object') return ok;
    for (const [name, value] of Object.entries(data)) {
      if ([value].flat().some((v) => typeof v === 'number' && !Number.isFinite(v))) {
        check.errors = [{ instancePath: `/${name}`, keyword: 'type', message: 'must be a finite number', params: {} }];
        return false;
      }
    }
    return true;
  };
  return check;
}
