import { ApiKeyStore } from '../../services/api/src/tenancy/api-keys.ts';
import { createRedis, type RedisSettings } from '@makam/shared/redis';

/** Creates an API key for `tenant` straight in Redis, as the admin CLI does. */
export async function createKey(redisUrl: string | RedisSettings, prefix: string, tenant: string): Promise<string> {
  const redis = createRedis(redisUrl);
  try {
    return (await new ApiKeyStore(redis, prefix).create(tenant, 'test')).key;
  } finally {
    redis.disconnect();
  }
}
