// The floor that bench/orchestration.ts measures the API against: a minimal Fastify app on the same
// Redis with one route that does what POST /v1/jobs must at least do (queue.add, with makam's job
// options) and one that does what GET /v1/jobs/:id must at least do (one HGETALL of the job's
// record). No auth, no checks, no logger: what is left is Fastify, the body parse and one Redis
// call. Its own process, as the API is, so the load generator does not share its event loop.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { trainJobOptions } from '../services/shared/src/queues.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const redis = new Redis(env('FLOOR_REDIS_URL'), { maxRetriesPerRequest: null });
const queue = new Queue(env('FLOOR_QUEUE'), { connection: redis, prefix: env('FLOOR_QUEUE_PREFIX') });
await queue.pause(); // nothing consumes it; paused as makam's queue is during the measurement
const recordPrefix = env('FLOOR_RECORD_PREFIX');

const app = Fastify();
app.post('/jobs', async (request, reply) => {
  const id = randomUUID();
  await queue.add('train', { jobId: id }, trainJobOptions(id, 3));
  return reply.code(202).send({ id, body: request.body !== undefined });
});
app.get<{ Params: { id: string } }>('/jobs/:id', async (request) => redis.hgetall(`${recordPrefix}${request.params.id}`));

const address = await app.listen({ host: '127.0.0.1', port: Number(env('FLOOR_PORT')) });
process.stdout.write(`floor listening ${address}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().then(async () => {
      await queue.close();
      redis.disconnect();
      process.exit(0);
    });
  });
}
