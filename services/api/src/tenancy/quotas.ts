import type { Redis } from 'ioredis';
import { runScript } from '@makam/shared/lua/scripts';

/** Why reserveActiveJob took no place: the tenant is at its limit, or a dataset (its index) is gone. */
export type Refusal = { active: number; missing?: undefined } | { missing: number; active?: undefined };

/** Per-tenant counters: active jobs (a set the status script keeps) and stored dataset bytes. */
export class TenantQuotas {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  /** Kept by JobStore: a job joins on create and leaves when it ends. */
  activeJobsKey = (tenant: string): string => `${this.prefix}:tenant:${tenant}:active`;
  bytesKey = (tenant: string): string => `${this.prefix}:tenant:${tenant}:bytes`;

  async activeJobs(tenant: string): Promise<number> {
    return this.redis.scard(this.activeJobsKey(tenant));
  }

  /**
   * Takes a place for job `id` among the tenant's active jobs, and checks that the dataset records
   * `datasetKeys` (already read once and found to be the tenant's) are still there, in one step
   * (lua/reserveActiveJob-1.lua): null when the place is taken; else nothing changed, and `active`
   * says how many jobs the tenant already has, or `missing` which of `datasetKeys` (its index) is gone.
   */
  async reserveActiveJob(tenant: string, id: string, limit: number, datasetKeys: readonly string[] = []): Promise<Refusal | null> {
    const n = (await runScript(this.redis, 'reserveActiveJob', [this.activeJobsKey(tenant)], [id, String(limit), ...datasetKeys])) as number;
    if (n === -1) return null;
    return n >= 0 ? { active: n } : { missing: -2 - n };
  }

  async releaseActiveJob(tenant: string, id: string): Promise<void> {
    await this.redis.srem(this.activeJobsKey(tenant), id);
  }

  async storedBytes(tenant: string): Promise<number> {
    return Number((await this.redis.get(this.bytesKey(tenant))) ?? 0);
  }

  async addBytes(tenant: string, bytes: number): Promise<void> {
    await this.redis.incrby(this.bytesKey(tenant), bytes);
  }

  /**
   * Takes `bytes` of the tenant's storage quota and adds `holder` to the set `refsKey` (a blob's
   * references), both or neither; null, or the bytes the tenant already stores when the upload
   * would pass `limit`. One step (lua/reserveBytes-2.lua), so simultaneous uploads cannot pass it together.
   */
  async reserveBytes(tenant: string, bytes: number, limit: number, refsKey: string, holder: string): Promise<number | null> {
    const used = (await runScript(this.redis, 'reserveBytes', [this.bytesKey(tenant), refsKey], [String(bytes), String(limit), holder])) as number;
    return used < 0 ? null : used;
  }

  /** Undoes reserveBytes (lua/releaseBytes-2.lua); returns the references the blob has left. */
  async releaseBytes(tenant: string, bytes: number, refsKey: string, holder: string): Promise<number> {
    return (await runScript(this.redis, 'releaseBytes', [this.bytesKey(tenant), refsKey], [String(bytes), holder])) as number;
  }
}
