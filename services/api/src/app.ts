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
  // Overload answers 503 early instead of letting latency climb until the process falls over.
  await app.register(underPressure, {
    maxEventLoopDelay: 2000,
    retryAfter: 5,
    pressureHandler: (_req, reply, type, value) => {
      reply.code(503).header('retry-after', '5').send({ error: { code: 'overloaded', message: `the server is overloaded (${type} ${value}); retry in a few seconds`, param: null } });
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
