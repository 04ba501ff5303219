import type { Redis } from 'ioredis';
import { runScript } from '@makam/shared/lua/scripts';
import { execTransaction } from '@makam/shared/redis';
import { redisKeys, type RedisKeys } from '@makam/shared/keys';

/** Per-tenant counters: active jobs (a set the status script keeps) and stored dataset bytes. */
export class TenantQuotas {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly keys: RedisKeys;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
    this.keys = redisKeys(prefix);
  }

  /** Kept by JobStore: a job joins on create (where the limit is checked: lua/createJob-8.lua) and leaves when it ends. */
  activeJobsKey = (tenant: string): string => this.keys.tenantActive(tenant);
  bytesKey = (tenant: string): string => `${this.prefix}:tenant:${tenant}:bytes`;

  async activeJobs(tenant: string): Promise<number> {
    return this.redis.scard(this.activeJobsKey(tenant));
  }

  async releaseActiveJob(tenant: string, id: string): Promise<void> {
    await execTransaction(this.redis, () => this.redis.multi().srem(this.activeJobsKey(tenant), id).zrem(this.keys.tenantReserving(tenant), id));
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
