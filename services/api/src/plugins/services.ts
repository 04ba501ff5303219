// Domain services the routes use, built once per app: Redis, the record stores, the blob store
// and two BullMQ queues per resource class (training runs, and tune jobs for the coordinators).
import fp from 'fastify-plugin';
import type { Queue } from 'bullmq';
import { BlobStore } from '@makam/shared/blob-store';
import { DatasetStore } from '@makam/shared/dataset-store';
import { IdempotencyStore } from '../tenancy/idempotency-store.ts';
import { JobStore } from '@makam/shared/job-store';
import { TenantQuotas } from '../tenancy/quotas.ts';
import { createQueues, tuneQueueName, type TrainJobData } from '@makam/shared/queues';
import { createRedis, type Redis } from '@makam/shared/redis';
import { redisKeys, type RedisKeys } from '@makam/shared/keys';
import { resourceClasses, type ResourceClass } from '../placement/resource-classes.ts';
import type { ApiConfig } from '../config.ts';
import { ReplicaWaits, waitsForReplicas } from '../replication.ts';

declare module 'fastify' {
  interface FastifyInstance {
    config: ApiConfig;
    redis: Redis;
    keys: RedisKeys;
    jobs: JobStore;
    datasets: DatasetStore;
    blobs: BlobStore;
    queues: Map<string, Queue<TrainJobData>>;
    /** Where a new job's record and its queueing go, in one MULTI (queue-new-job.ts). */
    submitConnection: Redis;
    /** With MAKAM_REDIS_WAIT_REPLICAS, where a write waits for the replicas (replication.ts); else null. */
    replicaWaits: ReplicaWaits | null;
    tuneQueues: Map<string, Queue<TrainJobData>>;
    resourceClasses: ResourceClass[];
    idempotency: IdempotencyStore;
    quotas: TenantQuotas;
  }
}

export default fp<{ config: ApiConfig }>(async (app, { config }) => {
  // Every request's front-door script (and a POST's reads) goes through this one: under concurrency
  // their commands share a write instead of one each (bench/orchestration.ts).
  // A write refused for want of a replica gives up after MAKAM_REDIS_NOREPLICAS_WAIT_MS: the
  // request answers 503 no_replicas rather than hanging while the replica is away.
  const noReplicasWaitMs = config.MAKAM_REDIS_NOREPLICAS_WAIT_MS;
  const redis = createRedis(config, { autoPipelining: true, noReplicasWaitMs });
  redis.on('error', (err) => app.log.warn({ err: err.message }, 'redis connection error'));
  const keys = redisKeys(config.MAKAM_REDIS_PREFIX);
  const classes = resourceClasses(config);
  const queueConnection = createRedis(config, { noReplicasWaitMs });
  queueConnection.on('error', () => {}); // reported through `redis` above
  // Not the queues' connection, on which BullMQ defines ~60 scripts that each MULTI would copy (queues.ts addJobWith);
  // the submissions of one tick leave in one write.
  const submitConnection = createRedis(config, { noReplicasWaitMs, coalesceWrites: true });
  submitConnection.on('error', () => {});
  const queues = createQueues(classes.map((c) => c.name), queueConnection, config.MAKAM_QUEUE_PREFIX);
  const tuneQueues = createQueues(classes.map((c) => c.name), queueConnection, config.MAKAM_QUEUE_PREFIX, tuneQueueName);
  app.decorate('config', config);
  app.decorate('redis', redis);
  app.decorate('keys', keys);
  app.decorate('jobs', new JobStore(redis, keys));
  const datasets = new DatasetStore(redis, keys);
  app.decorate('datasets', datasets);
  // Blob reference sets for datasets stored before they existed: built at start, not by the first
  // request that happens to delete (a refused request must change nothing).
  app.addHook('onReady', async () => {
    await datasets.ensureRefs().catch((err: unknown) => app.log.warn({ err: (err as Error).message }, 'dataset references not built yet; retried at the first delete'));
  });
  app.decorate('blobs', new BlobStore(config.MAKAM_STORE_DIR));
  app.decorate('queues', queues);
  app.decorate('submitConnection', submitConnection);
  // Its own connection: a WAIT blocks the connection it is sent on.
  const waitConnection = waitsForReplicas(config) ? createRedis(config, { noReplicasWaitMs }) : null;
  waitConnection?.on('error', () => {});
  app.decorate('replicaWaits', waitConnection ? new ReplicaWaits(waitConnection, keys.replicationMarker, config) : null);
  app.decorate('tuneQueues', tuneQueues);
  app.decorate('resourceClasses', classes);
  // No noReplicasWaitMs: it waits for a replica, for what a refused request leaves (idempotency-store.ts).
  const background = createRedis(config);
  background.on('error', () => {});
  app.decorate('idempotency', new IdempotencyStore(redis, config.MAKAM_REDIS_PREFIX, background));
  app.decorate('quotas', new TenantQuotas(redis, config.MAKAM_REDIS_PREFIX));
  app.addHook('onClose', async () => {
    await Promise.all([...queues.values(), ...tuneQueues.values()].map((q) => q.close()));
    queueConnection.disconnect();
    submitConnection.disconnect();
    waitConnection?.disconnect();
    background.disconnect();
    redis.disconnect();
  });
});
