import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/** A stored dataset: normalized JSON lines of {"text", "label"} in the blob store under its sha256. */
export interface DatasetRecord {
  id: string;
  object: 'dataset';
  /** The tenant that owns the dataset; other tenants see it as missing. */
  tenant: string;
  name: string | null;
  format: 'jsonl' | 'csv';
  sha256: string;
  size_bytes: number;
  rows: number;
  labels: string[];
  label_counts: Record<string, number>;
  created_at: string;
}

export class DatasetStore {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  async create(record: DatasetRecord): Promise<void> {
    await this.redis.multi().set(this.keys.dataset(record.id), JSON.stringify(record)).zadd(this.keys.datasets, 0, record.id).exec();
  }

  async get(id: string): Promise<DatasetRecord | null> {
    const raw = await this.redis.get(this.keys.dataset(id));
    return raw ? (JSON.parse(raw) as DatasetRecord) : null;
  }
}
