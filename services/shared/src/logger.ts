import { pino, type Logger } from 'pino';

/** A JSON logger; every line a job touches carries `jobId` through a child logger. */
export function createLogger(name: string, level: string): Logger {
  return pino({ name, level, redact: ['req.headers.authorization', '*.password', 'config.REDIS_URL'] });
}
export type { Logger };
