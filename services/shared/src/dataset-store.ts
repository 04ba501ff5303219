import type { Redis } from 'ioredis';
import { LruMap } from 'toad-cache';
import type { BlobStore } from './blob-store.ts';
import type { RedisKeys } from './keys.ts';
import { runScript } from './lua/scripts.ts';
import { execTransaction } from './redis.ts';

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

export type RemoveResult = { outcome: 'missing' } | { outcome: 'busy'; job: string } | { outcome: 'deleted'; sha256: string; references: number };

export class DatasetStore {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  async create(record: DatasetRecord): Promise<void> {
    await execTransaction(this.redis, () => this.redis.multi().set(this.keys.dataset(record.id), JSON.stringify(record)).zadd(this.keys.datasets, 0, record.id));
  }

  async get(id: string): Promise<DatasetRecord | null> {
    const raw = await this.redis.get(this.keys.dataset(id));
    return raw ? (JSON.parse(raw) as DatasetRecord) : null;
  }

  // Records this process has read. A record never changes and ids are never reused, so a remembered
  // one is what Redis holds, unless it has since been deleted: see recordOf.
  private readonly seen = new LruMap<DatasetRecord>(1024);

  /**
   * The record of dataset `id`, from this process's memory when it has read it before (a job
   * submission skips a round trip). It may have been deleted since (by another API process): only
   * for callers that check again, in the step that relies on it, that it still exists (the quota
   * reservation, lua/createJob-8.lua). Never answers from memory that a dataset is missing.
   */
  async recordOf(id: string): Promise<DatasetRecord | null> {
    const known = this.seen.get(id);
    if (known) return known;
    const record = await this.get(id);
    if (record) this.seen.set(id, record);
    return record;
  }

  /** The set of dataset ids whose normalized file is the blob `sha256` (records share a blob). */
  refsKey(sha256: string): string {
    return `${this.keys.datasets}:sha256:${sha256}`;
  }

  private refsBuilt: Promise<void> | null = null;

  /**
   * Datasets stored before blobs had reference sets get theirs, once per store (a marker key says
   * a full pass finished), so deleting one never takes a file that an older record still uses.
   */
  ensureRefs(): Promise<void> {
    this.refsBuilt ??= (async () => {
      const marker = `${this.keys.datasets}:refs-built`;
      if (await this.redis.exists(marker)) return;
      for (let start = 0; ; start += 500) {
        const ids = await this.redis.zrange(this.keys.datasets, start, start + 499);
        if (ids.length === 0) break;
        const raws = await this.redis.mget(ids.map((id) => this.keys.dataset(id)));
        await execTransaction(this.redis, () => {
          const multi = this.redis.multi();
          raws.forEach((raw, i) => {
            if (raw) multi.sadd(this.refsKey((JSON.parse(raw) as DatasetRecord).sha256), ids[i]!);
          });
          return multi;
        });
      }
      await this.redis.set(marker, new Date().toISOString());
    })().catch((err: unknown) => {
      this.refsBuilt = null; // tried again on the next call
      throw err;
    });
    return this.refsBuilt;
  }

  /**
   * Removes the tenant's dataset `id` in one step (lua/removeDataset-5.lua): `bytesKey` is the tenant's
   * stored-bytes counter. The blob is the caller's to drop when no reference is left.
   */
  async remove(id: string, tenant: string, bytesKey: string): Promise<RemoveResult> {
    await this.ensureRefs();
    const keys = [this.keys.dataset(id), this.keys.datasets, bytesKey, this.keys.tenantActive(tenant), this.keys.tenantReserving(tenant)];
    const r = (await runScript(this.redis, 'removeDataset', keys, [id, tenant, this.keys.job(''), this.refsKey('')])) as [string, (string | number)?, number?];
    if (r[0] !== 'busy') this.seen.delete(id);
    if (r[0] === 'busy') return { outcome: 'busy', job: String(r[1]) };
    if (r[0] === 'deleted') return { outcome: 'deleted', sha256: String(r[1]), references: Number(r[2]) };
    return { outcome: 'missing' };
  }

  /**
   * Deletes the blob `sha256` if no dataset refers to it. An upload takes its reference before it
   * writes the blob, so the blob is first moved aside and the references read again: one taken
   * meanwhile puts it back (the content is the same, whoever wrote it).
   */
  async dropBlobIfUnused(sha256: string, blobs: BlobStore): Promise<boolean> {
    await this.ensureRefs();
    if ((await this.redis.scard(this.refsKey(sha256))) > 0) return false;
    const finalPath = blobs.datasetPath(sha256);
    const aside = await blobs.tempPath();
    try {
      await blobs.commit(finalPath, aside);
    } catch {
      return false; // already gone
    }
    if ((await this.redis.scard(this.refsKey(sha256))) > 0) {
      if (!(await blobs.exists(finalPath))) await blobs.commit(aside, finalPath);
      else await blobs.remove(aside);
      return false;
    }
    await blobs.remove(aside);
    return true;
  }
}
