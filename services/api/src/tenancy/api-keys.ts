// API keys: each belongs to a tenant and is stored only as its sha256 (keys are 256 random bits,
// so a fast hash is enough; nothing in Redis can be replayed as a key).
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { monotonicFactory } from 'ulid';
import { execTransaction } from '@makam/shared/redis';

const ulid = monotonicFactory();

export const TENANT_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
const tenantRe = new RegExp(TENANT_PATTERN);
export const isTenant = (s: string): boolean => tenantRe.test(s);

export interface ApiKeyRecord {
  id: string;
  object: 'api_key';
  tenant: string;
  name: string | null;
  /** The key's first characters, so people can tell keys apart. */
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

// One-shot: every authenticated request hashes its key, and a Hash object a call took 2-3 times as long.
export const hashKey = (key: string): string => hash('sha256', key, 'hex');

/** Constant-time comparison for the operator's admin key. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(hashKey(a), 'hex');
  const y = Buffer.from(hashKey(b), 'hex');
  return timingSafeEqual(x, y);
}

export class ApiKeyStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private byHash = (h: string) => `${this.prefix}:apikey:${h}`;
  private get index() {
    return `${this.prefix}:apikeys`;
  }

  /** Creates a key; the secret is returned here once and never again. */
  async create(tenant: string, name: string | null = null): Promise<{ key: string; record: ApiKeyRecord }> {
    if (!isTenant(tenant)) throw new Error(`tenant must match ${TENANT_PATTERN}`);
    const key = `mk_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = { id: `key_${ulid().toLowerCase()}`, object: 'api_key', tenant, name, prefix: key.slice(0, 7), created_at: new Date().toISOString(), revoked_at: null };
    const h = hashKey(key);
    // Sent again whole if a replica or a failover refuses it, as every MULTI is (execTransaction).
    await execTransaction(this.redis, () => this.redis.multi().set(this.byHash(h), JSON.stringify(record)).hset(this.index, record.id, h));
    return { key, record };
  }

  /** The key's record, or null when the key is unknown or revoked. */
  async verify(key: string): Promise<ApiKeyRecord | null> {
    const recordKey = this.recordKey(key);
    if (!recordKey) return null;
    const raw = await this.redis.get(recordKey);
    if (!raw) return null;
    const record = JSON.parse(raw) as ApiKeyRecord;
    return record.revoked_at ? null : record;
  }

  /** Where the record of `key` is kept; null for a string that cannot be a key (so none is looked up). */
  recordKey(key: string): string | null {
    return /^mk_[A-Za-z0-9_-]{43}$/.test(key) ? this.byHash(hashKey(key)) : null;
  }

  async list(tenant?: string): Promise<ApiKeyRecord[]> {
    const hashes = Object.values(await this.redis.hgetall(this.index));
    if (hashes.length === 0) return [];
    const raws = await this.redis.mget(hashes.map(this.byHash));
    return raws
      .filter((r): r is string => r !== null)
      .map((r) => JSON.parse(r) as ApiKeyRecord)
      .filter((r) => !tenant || r.tenant === tenant)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Revokes a key by id; returns its record, or null when there is no such key. */
  async revoke(id: string): Promise<ApiKeyRecord | null> {
    const h = await this.redis.hget(this.index, id);
    if (!h) return null;
    const raw = await this.redis.get(this.byHash(h));
    if (!raw) return null;
    const record = JSON.parse(raw) as ApiKeyRecord;
    if (!record.revoked_at) {
      record.revoked_at = new Date().toISOString();
      await this.redis.set(this.byHash(h), JSON.stringify(record));
    }
    return record;
  }
}
