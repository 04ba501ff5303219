import type { Redis } from 'ioredis';

// Joins the tenant's active set only while it holds fewer than the limit: the check and the join
// are one step, so simultaneous submissions cannot pass the limit together.
const RESERVE = `
local n = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
if n >= tonumber(ARGV[2]) then return n end
redis.call('SADD', KEYS[1], ARGV[1])
return -1`;

// Takes ARGV[1] bytes of the tenant's stored-bytes count only while the total stays within
// ARGV[2], and in the same step adds ARGV[3] to the set KEYS[2] (the blob's references): the check
// and the take are one step, so simultaneous uploads cannot pass the quota together.
const RESERVE_BYTES = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return used end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return -1`;

// Gives back what RESERVE_BYTES took; returns how many references the blob has left.
const RELEASE_BYTES = `
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left < 0 then redis.call('SET', KEYS[1], 0) end
redis.call('SREM', KEYS[2], ARGV[2])
return redis.call('SCARD', KEYS[2])`;

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

  /** Takes a place for job `id` among the tenant's active jobs; null, or how many it already has. */
  async reserveActiveJob(tenant: string, id: string, limit: number): Promise<number | null> {
    const n = (await this.redis.eval(RESERVE, 1, this.activeJobsKey(tenant), id, String(limit))) as number;
    return n < 0 ? null : n;
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
   * would pass `limit`.
   */
  async reserveBytes(tenant: string, bytes: number, limit: number, refsKey: string, holder: string): Promise<number | null> {
    const used = (await this.redis.eval(RESERVE_BYTES, 2, this.bytesKey(tenant), refsKey, String(bytes), String(limit), holder)) as number;
    return used < 0 ? null : used;
  }

  /** Undoes reserveBytes; returns the references the blob has left. */
  async releaseBytes(tenant: string, bytes: number, refsKey: string, holder: string): Promise<number> {
    return (await this.redis.eval(RELEASE_BYTES, 2, this.bytesKey(tenant), refsKey, String(bytes), holder)) as number;
  }
}
