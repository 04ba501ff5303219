// GET /v1/workers: the training workers the dispatchers reach, as they last reported themselves
// (GetCapabilities, refreshed every 10 s; a worker unheard of for 30 s drops off).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Telemetry } from '@makam/shared/telemetry';
import { errorResponses } from '../../schemas/common.ts';

const Worker = Type.Object({
  object: Type.Literal('worker'),
  address: Type.String(),
  resource_class: Type.String(),
  worker_id: Type.String(),
  device: Type.String(),
  gpu_name: Type.String(),
  memory_total_bytes: Type.Integer(),
  memory_free_bytes: Type.Integer(),
  active_runs: Type.Integer(),
  families: Type.Array(Type.String()),
  versions: Type.Record(Type.String(), Type.String()),
  seen_at: Type.String(),
});

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const telemetry = new Telemetry(app.redis, app.config.MAKAM_REDIS_PREFIX);
  app.get(
    '/',
    { schema: { summary: 'List the training workers and their capacity, by resource class', response: { 200: Type.Object({ object: Type.Literal('list'), data: Type.Array(Worker) }), ...errorResponses } } },
    async () => ({ object: 'list' as const, data: await telemetry.workers() }),
  );
};

export default routes;
