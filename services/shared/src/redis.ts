import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';

/**
 * Where Redis is and how to reach it: the URL (`redis://` or `rediss://`, credentials in it) and,
 * for TLS, PEM files: the CA of the server's certificate (else the system's CAs), and a client
 * certificate and key for a Redis that asks for one (`tls-auth-clients`). Every process's config
 * is one of these; the files are read when a connection is made.
 */
export interface RedisSettings {
  REDIS_URL: string;
  MAKAM_REDIS_TLS_CA?: string | undefined;
  MAKAM_REDIS_TLS_CERT?: string | undefined;
  MAKAM_REDIS_TLS_KEY?: string | undefined;
}

const TLS_FILES = ['MAKAM_REDIS_TLS_CA', 'MAKAM_REDIS_TLS_CERT', 'MAKAM_REDIS_TLS_KEY'] as const;

/**
 * Checks the Redis settings that one variable alone cannot: TLS files only with a rediss:// URL,
 * a client certificate only with its key, every file readable. The message names the variable
 * (and never the URL, which may hold a password).
 */
export function checkRedisSettings(settings: RedisSettings): void {
  const set = TLS_FILES.filter((name) => settings[name]);
  if (set.length && !/^rediss:\/\//i.test(settings.REDIS_URL)) throw new Error(`${set.join(', ')} set, but REDIS_URL is not a rediss:// URL`);
  if (Boolean(settings.MAKAM_REDIS_TLS_CERT) !== Boolean(settings.MAKAM_REDIS_TLS_KEY)) throw new Error('MAKAM_REDIS_TLS_CERT and MAKAM_REDIS_TLS_KEY go together');
  for (const name of set) {
    try {
      readFileSync(settings[name]!);
    } catch (err) {
      throw new Error(`${name}: cannot read ${settings[name]} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
}

/** ioredis's TLS options for `settings` (undefined for a plaintext URL). */
function tlsOptions(settings: RedisSettings): RedisOptions['tls'] {
  if (!/^rediss:\/\//i.test(settings.REDIS_URL)) return undefined;
  const read = (file: string | undefined) => (file ? readFileSync(file) : undefined);
  const tls = { ca: read(settings.MAKAM_REDIS_TLS_CA), cert: read(settings.MAKAM_REDIS_TLS_CERT), key: read(settings.MAKAM_REDIS_TLS_KEY) };
  return Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined));
}

/**
 * Opens a Redis connection. `blocking` connections (BullMQ Workers, stream readers) retry commands
 * forever, as BullMQ requires; request-serving connections fail fast so an API call answers 503
 * rather than hanging while Redis is away. A URL alone is a plaintext Redis, or a rediss:// one
 * whose certificate the system's CAs vouch for.
 */
export function createRedis(target: RedisSettings | string, { blocking = false }: { blocking?: boolean } = {}): Redis {
  const settings = typeof target === 'string' ? { REDIS_URL: target } : target;
  return new Redis(settings.REDIS_URL, {
    maxRetriesPerRequest: blocking ? null : 2,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
    tls: tlsOptions(settings),
  });
}

/** The Redis settings as environment variables, for a child process (the study process). */
export function redisEnv(settings: RedisSettings): Record<string, string | undefined> {
  return { REDIS_URL: settings.REDIS_URL, ...Object.fromEntries(TLS_FILES.map((name) => [name, settings[name]])) };
}
export type { Redis };
