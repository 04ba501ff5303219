import { Redis } from 'ioredis';

/**
 * Opens a Redis connection. `blocking` connections (BullMQ Workers, stream readers) retry commands
 * forever, as BullMQ requires; request-serving connections fail fast so an API call answers 503
 * rather than hanging while Redis is away.
 */
export function createRedis(url: string, { blocking = false }: { blocking?: boolean } = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: blocking ? null : 2,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
}
export type { Redis };
