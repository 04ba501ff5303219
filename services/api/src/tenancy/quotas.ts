import type { Redis } from 'ioredis';
import { runScript } from '@makam/shared/lua/scripts';
import { redisKeys, type RedisKeys } from '@makam/shared/keys';

/** Why reserveActiveJob took no place: the tenant is at its limit, or a dataset (its index) is gone. */
export type Refusal = { active: number; missing?: undefined } | { missing: number; active?: undefined };

/** Per-tenant counters: active jobs (a set the status script keeps) and stored dataset bytes. */
export class TenantQuotas {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly keys: RedisKeys;
  private readonly reservationMs: number;

  /**
   * `reservationMs`: how long a place taken by reserveActiveJob waits for its job's record before a
   * later reservation may give it back (a submitter died in between). A submission takes one round
   * trip from place to record, so the default is far above any live one.
   * @defaultValue 60_000
   */
  constructor(redis: Redis, prefix: string, reservationMs = 60_000) {
    this.redis = redis;
    this.prefix = prefix;
    this.keys = redisKeys(prefix);
    this.reservationMs = reservationMs;
  }

  /** Kept by JobStore: a job joins on create and leaves when it ends. */
  activeJobsKey = (tenant: string): string => this.keys.tenantActive(tenant);
  bytesKey = (tenant: string): string => `${this.prefix}:tenant:${tenant}:bytes`;

  async activeJobs(tenant: string): Promise<number> {
    return this.redis.scard(this.activeJobsKey(tenant));
  }

  /**
   * Takes a place for job `id` among the tenant's active jobs, and checks that the dataset records
   * `datasetKeys` (already read once and found to be the tenant's) are still there, in one step
   * (lua/reserveActiveJob-2.lua): null when the place is taken; else nothing changed, and `active`
   * says how many jobs the tenant already has, or `missing` which of `datasetKeys` (its index) is gone.
   * Places past their deadline whose job has no record (its submitter died) are given back first.
   */
  async reserveActiveJob(tenant: string, id: string, limit: number, datasetKeys: readonly string[] = []): Promise<Refusal | null> {
    const n = (await runScript(this.redis, 'reserveActiveJob', [this.activeJobsKey(tenant), this.keys.tenantReserving(tenant)], [
      id,
      String(limit),
      this.keys.job(''),
      String(this.reservationMs),
      ...datasetKeys,
    ])) as number;
    if (n === -1) return null;
    return n >= 0 ? { active: n } : { missing: -2 - n };
  }

  async releaseActiveJob(tenant: string, id: string): Promise<void> {
    await this.redis.multi().srem(this.activeJobsKey(tenant), id).zrem(this.keys.tenantReserving(tenant), id).exec();
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
