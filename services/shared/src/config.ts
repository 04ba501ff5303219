// Configuration comes from environment variables, validated once at boot against a JSON schema
// with defaults; a bad value stops the process with a message naming the variable.
import envSchema from 'env-schema';
import { Type, type Static, type TObject, type TProperties } from 'typebox';
import { checkRedisSettings, type RedisSettings } from './redis.ts';

/** Settings every makam process reads. */
export const SharedConfig = {
  /** Redis for queues, job records and event streams. */
  REDIS_URL: Type.String({ default: 'redis://127.0.0.1:6379', description: 'Redis URL (redis:// or rediss://)' }),
  /** PEM file: the CA of the Redis server's certificate (rediss:// only; unset: the system's CAs). */
  MAKAM_REDIS_TLS_CA: Type.Optional(Type.String({ minLength: 1 })),
  /** PEM files: a client certificate and key, for a Redis that asks clients for one (mutual TLS). */
  MAKAM_REDIS_TLS_CERT: Type.Optional(Type.String({ minLength: 1 })),
  MAKAM_REDIS_TLS_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** Redis Sentinel: host:port,... of the sentinels; the primary is found (and found again after a failover) through them. */
  REDIS_SENTINELS: Type.Optional(Type.String({ minLength: 1 })),
  /** The primary's name in the sentinels' configuration (`sentinel monitor <name> ...`). */
  REDIS_SENTINEL_NAME: Type.String({ default: 'mymaster', pattern: '^[A-Za-z0-9._-]+$' }),
  /** The sentinels' own password (`requirepass` in sentinel.conf), if they ask for one. */
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  /** Key prefix of makam's records and streams in Redis. For Redis Cluster, a hash tag (`{makam}`) that the queue prefix starts with too: a job's record is created in one transaction with its queue entry. */
  MAKAM_REDIS_PREFIX: Type.String({ default: 'makam', minLength: 1, pattern: '^(\\{[a-z0-9_-]+\\})?[a-z0-9_-]*$' }),
  /** Key prefix of the BullMQ queues (`{makam}-q` beside a `{makam}` record prefix, for Redis Cluster). */
  MAKAM_QUEUE_PREFIX: Type.String({ default: 'makam-q', minLength: 1, pattern: '^(\\{[a-z0-9_-]+\\})?[a-z0-9_-]*$' }),
  /** Where datasets and model artifacts are stored (a directory shared by API and dispatchers). */
  MAKAM_STORE_DIR: Type.String({ default: './var/store' }),
  /** The resource classes, one queue each: name=device:memory (cpu, gpu-4g and gpu-32g know their defaults). */
  MAKAM_RESOURCE_CLASSES: Type.String({ default: 'cpu,gpu-4g,gpu-32g', pattern: '^[a-z0-9-]+(=(cpu|cuda):[0-9.]+(B|KiB|MiB|GiB|TiB)(:[1-9][0-9]{0,3})?)?(,[a-z0-9-]+(=(cpu|cuda):[0-9.]+(B|KiB|MiB|GiB|TiB)(:[1-9][0-9]{0,3})?)?)*$' }),
  /** pino log level. */
  MAKAM_LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
};

/** Reads and validates `properties` from `env`, applying defaults. */
export function loadConfig<P extends TProperties>(properties: P, env: NodeJS.ProcessEnv = process.env): Static<TObject<P>> {
  const config = envSchema<Static<TObject<P>>>({
    schema: Type.Object(properties) as unknown as object,
    data: env,
    dotenv: false,
  });
  if ('REDIS_URL' in properties) checkRedisSettings(config as unknown as RedisSettings);
  return config;
}
