// The API as a Fastify plugin: tests build it and call it with inject; server.ts owns the process.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '@makam/shared';
import type { ApiConfig } from './config.ts';
import { ApiError, registerErrorHandler } from './errors.ts';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import auth from './plugins/auth.ts';
import services from './plugins/services.ts';
import adminRoutes from './routes/admin/index.ts';
import dashboard from './plugins/dashboard.ts';
import liveEvents from './plugins/live-events.ts';
import metrics from './plugins/metrics.ts';
import openapi from './plugins/openapi.ts';
import queueBoard from './plugins/queue-board.ts';
import webhooks from './plugins/webhooks.ts';
import artifactFileRoutes from './routes/artifact-files/index.ts';
import eventStreamRoutes from './routes/events-stream/index.ts';
import webhookRoutes from './routes/webhooks/index.ts';
import workerRoutes from './routes/workers/index.ts';
import datasetRoutes from './routes/datasets/index.ts';
import jobRoutes from './routes/jobs/index.ts';

export async function buildApp(config: ApiConfig, logger?: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger | undefined,
    bodyLimit: 1024 * 1024,
    ajv: {
      // Unknown fields are refused, not silently dropped; defaults are filled in.
      customOptions: { removeAdditional: false, useDefaults: true, coerceTypes: 'array', allErrors: false, verbose: true },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  registerErrorHandler(app);
  await app.register(services, { config });
  // Before every route, so each is documented and timed.
  await app.register(openapi);
  await app.register(metrics);
  // Overload answers 503 early, before the body is read, instead of letting latency climb until the
  // process falls over. /healthz (liveness) and /metrics still answer: an overloaded process is
  // alive, restarting it would only lose its work, and operators need to see the load; /readyz
  // answers 503 like every other route, so a load balancer sends traffic elsewhere meanwhile.
  const retryAfter = config.MAKAM_PRESSURE_RETRY_AFTER_S;
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
      reply.header('retry-after', String(retryAfter));
      throw new ApiError(503, 'overloaded', `the server is overloaded (${pressureFigure(type, value, config)}); retry in ${retryAfter} s`, null);
    },
  });
  await app.register(auth);
  await app.register(rateLimit, {
    global: true,
    hook: 'preHandler',
    max: config.MAKAM_RATE_LIMIT_PER_MINUTE,
    timeWindow: 60_000,
    redis: app.redis,
    nameSpace: `${config.MAKAM_REDIS_PREFIX}:ratelimit:`,
    keyGenerator: (request) => request.apiKeyId ?? request.ip,
    allowList: (request) => !request.url.startsWith('/v1/'),
    errorResponseBuilder: (_req, context) =>
      new ApiError(429, 'rate_limited', `more than ${context.max} requests a minute with this API key; retry in ${Math.ceil(context.ttl / 1000)} s`, null) as never,
  });
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await app.redis.ping();
      return { ok: true };
    } catch {
      return reply.code(503).send({ ok: false });
    }
  });
  await app.register(datasetRoutes, { prefix: '/v1/datasets' });
  await app.register(jobRoutes, { prefix: '/v1/jobs' });
  await app.register(adminRoutes, { prefix: '/v1/admin' });
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
