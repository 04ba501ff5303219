// The API as a Fastify plugin: tests build it and call it with inject; server.ts owns the process.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from '@makam/shared';
import type { ApiConfig } from './config.ts';
import { registerErrorHandler } from './errors.ts';
import services from './plugins/services.ts';
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
  return app as unknown as FastifyInstance;
}
