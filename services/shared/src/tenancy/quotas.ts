import type { Redis } from 'ioredis';

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

  async storedBytes(tenant: string): Promise<number> {
    return Number((await this.redis.get(this.bytesKey(tenant))) ?? 0);
  }

  async addBytes(tenant: string, bytes: number): Promise<void> {
    await this.redis.incrby(this.bytesKey(tenant), bytes);
  }
}
