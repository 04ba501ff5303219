import { pino, type Logger } from 'pino';

/**
 * A JSON logger; every line a job touches carries `jobId` through a child logger. `sync: false`
 * writes off the event loop, the lines logged while a write is in flight going out together in the
 * next (the API: a write a request was ~10% of its busy time under load, bench/api-profile.ts);
 * pino flushes what is left when the process exits.
 */
export function createLogger(name: string, level: string, { sync = true }: { sync?: boolean } = {}): Logger {
  const options = { name, level, redact: ['req.headers.authorization', '*.password', 'config.REDIS_URL', 'config.REDIS_SENTINEL_PASSWORD'] };
  return sync ? pino(options) : pino(options, pino.destination({ dest: 1, sync: false }));
}
export type { Logger };
