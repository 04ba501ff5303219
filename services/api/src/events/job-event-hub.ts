// Live job events for server-sent event streams. Each job that someone watches has ONE reader in
// this process: an XREAD BLOCK loop on its own blocking Redis connection, whose entries fan out to
// every watcher of that job. A watcher catches up from its own cursor with XRANGE on the shared
// connection, then takes the reader's entries past that cursor, so N watchers of a job cost Redis
// one blocked client, not N. The reader stops (and its connection closes) when its last watcher
// leaves or the job ends.
import type { FastifyBaseLogger as Logger } from 'fastify';
import { createRedis, type Redis, type RedisSettings } from '@makam/shared/redis';
import { isTerminal, type JobStatus } from '@makam/shared/job-state';
import type { JobEvent, StoredEvent } from '@makam/shared/job-store';
import type { RedisKeys } from '@makam/shared/keys';

/** Stream ids ("ms-seq") in order. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

export function toStored([id, fields]: [string, string[]]): StoredEvent {
  return { id, created_at: new Date(Number(id.split('-')[0])).toISOString(), data: JSON.parse(fields[1]!) as JobEvent };
}

/** The status a terminal `status` event announces, or null. */
export const endsJob = (e: StoredEvent): JobStatus | null => (e.data.type === 'status' && isTerminal(e.data.status) ? e.data.status : null);

export interface Watcher {
  /** Entries the reader read (the watcher filters those at or before its cursor). */
  push(events: StoredEvent[]): void;
  /** The reader stopped for good (the hub closes); the watcher should end its response. */
  stop(): void;
}

const BLOCK_MS = 30_000;
const COUNT = 500;

class Reader {
  readonly jobId: string;
  readonly watchers = new Set<Watcher>();
  /** Where the reader started: entries after it arrive through push(). */
  readonly ready: Promise<string>;
  private readonly conn: Redis;
  private readonly key: string;
  private stopped = false;
  private readonly log: Logger;

  constructor(jobId: string, key: string, redis: Redis, settings: RedisSettings, name: string, log: Logger) {
    this.jobId = jobId;
    this.key = key;
    this.log = log;
    this.conn = createRedis(settings, { blocking: true });
    this.conn.on('error', () => {}); // reported by the loop when it matters
    void this.conn.client('SETNAME', name).catch(() => {});
    this.ready = redis.xrevrange(key, '+', '-', 'COUNT', 1).then((last) => last[0]?.[0] ?? '0-0');
    void this.ready.then(
      (start) => this.loop(start),
      () => this.stop(),
    );
  }

  private async loop(start: string): Promise<void> {
    let position = start;
    while (!this.stopped) {
      try {
        const res = (await this.conn.xread('COUNT', COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.key, position)) as Array<[string, Array<[string, string[]]>]> | null;
        if (!res || this.stopped) continue;
        const events = res[0]![1].map(toStored);
        position = events.at(-1)!.id;
        for (const w of this.watchers) w.push(events);
        // Nothing follows a job's terminal status: the watchers end after it, and so does the reader.
        if (events.some(endsJob)) this.stop();
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ jobId: this.jobId, err: (err as Error).message }, 'event reader failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // Disconnecting is what interrupts a blocked XREAD at once.
    this.conn.disconnect();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

export class JobEventHub {
  private readonly readers = new Map<string, Reader>();
  private readonly redis: Redis;
  private readonly settings: RedisSettings;
  private readonly keys: RedisKeys;
  private readonly prefix: string;
  private readonly log: Logger;

  constructor(redis: Redis, settings: RedisSettings, keys: RedisKeys, prefix: string, log: Logger) {
    this.redis = redis;
    this.settings = settings;
    this.keys = keys;
    this.prefix = prefix;
    this.log = log;
  }

  /** Readers running now (one per watched job). */
  get readerCount(): number {
    return this.readers.size;
  }

  /** The client name each reader's connection carries (CLIENT LIST shows it). */
  readerName(jobId: string): string {
    return `${this.prefix}:sse-reader:${jobId}`;
  }

  /**
   * Adds a watcher of `jobId`, starting its job's reader if none runs. Resolves with the reader's
   * start position once known: a watcher's backfill must reach at least that far.
   */
  async watch(jobId: string, watcher: Watcher): Promise<{ start: string; unwatch: () => void }> {
    let reader = this.readers.get(jobId);
    if (!reader || reader.isStopped) {
      reader = new Reader(jobId, this.keys.jobEvents(jobId), this.redis, this.settings, this.readerName(jobId), this.log);
      this.readers.set(jobId, reader);
    }
    reader.watchers.add(watcher);
    const r = reader;
    const unwatch = () => {
      r.watchers.delete(watcher);
      if (r.watchers.size === 0) {
        r.stop();
        if (this.readers.get(jobId) === r) this.readers.delete(jobId);
      }
    };
    try {
      return { start: await r.ready, unwatch };
    } catch (err) {
      unwatch();
      throw err;
    }
  }

  /** Events after `after` (exclusive), up to `limit`, from the shared connection. */
  async backlog(jobId: string, after: string | null, limit: number): Promise<StoredEvent[]> {
    const entries = (await this.redis.xrange(this.keys.jobEvents(jobId), after ? `(${after}` : '-', '+', 'COUNT', limit)) as Array<[string, string[]]>;
    return entries.map(toStored);
  }

  /** The event stored at `id`, if any. */
  async at(jobId: string, id: string): Promise<StoredEvent | null> {
    const entries = (await this.redis.xrange(this.keys.jobEvents(jobId), id, id)) as Array<[string, string[]]>;
    return entries[0] ? toStored(entries[0]) : null;
  }

  /** Stops every reader and tells every watcher to end (the server is closing). */
  close(): void {
    for (const r of this.readers.values()) {
      r.stop();
      for (const w of r.watchers) w.stop();
    }
    this.readers.clear();
  }
}
