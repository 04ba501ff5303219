// What dispatchers tell operators through Redis, for the API's /metrics and /v1/workers to read:
// each worker's capabilities (published with a TTL, so a dispatcher that dies takes its workers
// off the list within a minute) and a histogram of metric-ingest lag per resource class (time
// from a worker's event to its storage in Redis), summed over every dispatcher of the class.
import type { Redis } from 'ioredis';

/** A worker as its dispatcher last saw it (GetCapabilities). */
export interface WorkerInfo {
  object: 'worker';
  /** The gRPC address its dispatcher reaches it at. */
  address: string;
  resource_class: string;
  worker_id: string;
  device: string;
  gpu_name: string;
  memory_total_bytes: number;
  memory_free_bytes: number;
  active_runs: number;
  families: string[];
  versions: Record<string, string>;
  /** When the dispatcher last heard from it. */
  seen_at: string;
}

/** Upper bounds (seconds) of the ingest-lag histogram's buckets; the last bucket is +Inf. */
export const INGEST_LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface LagHistogram {
  /** Counts per bucket (not cumulative), one more than INGEST_LAG_BUCKETS for +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}

export const emptyLag = (): LagHistogram => ({ buckets: new Array(INGEST_LAG_BUCKETS.length + 1).fill(0), sum: 0, count: 0 });

export function observeLag(h: LagHistogram, seconds: number): void {
  const s = Math.max(0, seconds);
  let i = INGEST_LAG_BUCKETS.findIndex((b) => s <= b);
  if (i < 0) i = INGEST_LAG_BUCKETS.length;
  h.buckets[i]! += 1;
  h.sum += s;
  h.count += 1;
}

export class Telemetry {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private workerKey(resourceClass: string, address: string): string {
    return `${this.prefix}:worker:${resourceClass}:${address}`;
  }

  private get workerIndex(): string {
    return `${this.prefix}:workers`;
  }

  private lagKey(resourceClass: string): string {
    return `${this.prefix}:ingest-lag:${resourceClass}`;
  }

  private get lagIndex(): string {
    return `${this.prefix}:ingest-lag`;
  }

  /** Records a worker's capabilities for `ttlSeconds`. */
  async publishWorker(info: WorkerInfo, ttlSeconds: number): Promise<void> {
    const key = this.workerKey(info.resource_class, info.address);
    await this.redis.multi().set(key, JSON.stringify(info), 'EX', ttlSeconds).sadd(this.workerIndex, key).exec();
  }

  /** Every worker heard from within its TTL; entries that expired leave the index here. */
  async workers(): Promise<WorkerInfo[]> {
    const keys = await this.redis.smembers(this.workerIndex);
    if (keys.length === 0) return [];
    const values = await this.redis.mget(...keys);
    const gone = keys.filter((_, i) => values[i] === null);
    if (gone.length) await this.redis.srem(this.workerIndex, ...gone);
    return values
      .filter((v): v is string => v !== null)
      .map((v) => JSON.parse(v) as WorkerInfo)
      .sort((a, b) => a.resource_class.localeCompare(b.resource_class) || a.address.localeCompare(b.address));
  }

  /** Adds a dispatcher's observations since its last flush to the class's histogram. */
  async addLag(resourceClass: string, h: LagHistogram): Promise<void> {
    if (h.count === 0) return;
    const key = this.lagKey(resourceClass);
    const m = this.redis.multi().sadd(this.lagIndex, resourceClass);
    h.buckets.forEach((n, i) => {
      if (n) m.hincrby(key, `b${i}`, n);
    });
    await m.hincrbyfloat(key, 'sum', h.sum).hincrby(key, 'count', h.count).exec();
  }

  /** The ingest-lag histogram of each class that has one. */
  async lag(): Promise<Map<string, LagHistogram>> {
    const classes = (await this.redis.smembers(this.lagIndex)).sort();
    const out = new Map<string, LagHistogram>();
    for (const c of classes) {
      const hash = await this.redis.hgetall(this.lagKey(c));
      const h = emptyLag();
      h.buckets = h.buckets.map((_, i) => Number(hash[`b${i}`] ?? 0));
      h.sum = Number(hash.sum ?? 0);
      h.count = Number(hash.count ?? 0);
      out.set(c, h);
    }
    return out;
  }
}
