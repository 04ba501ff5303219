import type { Redis } from 'ioredis';

// Joins the tenant's active set only while it holds fewer than the limit: the check and the join
// are one step, so simultaneous submissions cannot pass the limit together.
const RESERVE = `
local n = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
if n >= tonumber(ARGV[2]) then return n end
redis.call('SADD', KEYS[1], ARGV[1])
return -1`;

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
}
