// The dispatcher's Redis connections report trouble here. ioredis emits 'error' on every failed
// reconnect (every 0.2-2 s while Redis is away): a connection without a listener prints "Unhandled
// error event" each time, and a listener that logs each one floods the log. The dispatcher waits
// out an outage (its connections retry for ever), so it is worth a warning, not an error per try.
import type { Logger } from '@makam/shared/logger';

/** One line per connection per `everyMs` at most, with how many errors it left out. */
export class RedisErrorLog {
  private readonly log: Logger;
  private readonly everyMs: number;
  private readonly last = new Map<string, { at: number; leftOut: number }>();

  /** @param everyMs the least time between two lines of one connection. @defaultValue 10_000 */
  constructor(log: Logger, everyMs = 10_000) {
    this.log = log;
    this.everyMs = everyMs;
  }

  /** The 'error' listener of connection `name` (several emitters of one connection share a name). */
  listener(name: string): (err: Error) => void {
    return (err) => {
      const now = Date.now();
      const seen = this.last.get(name);
      if (seen && now - seen.at < this.everyMs) {
        seen.leftOut++;
        return;
      }
      this.log.warn({ connection: name, err: err.message, ...(seen?.leftOut ? { left_out: seen.leftOut } : {}) }, 'redis connection error; retrying');
      this.last.set(name, { at: now, leftOut: 0 });
    };
  }

  /**
   * The 'error' listener of a BullMQ Worker: its connections' errors go to `name`'s rate-limited
   * line, anything else (a failure of the Worker itself) to `other`, as before.
   */
  workerListener(name: string, other: (err: Error) => void): (err: Error) => void {
    const connection = this.listener(name);
    return (err) => (isConnectionError(err) ? connection(err) : other(err));
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** An error of the connection to Redis (refused, reset, closed), not of a command or a job. */
function isConnectionError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && CONNECTION_CODES.has(code)) || /^Connection is closed|^connect E|^read E|^write E/.test(err.message);
}
