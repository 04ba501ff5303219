// Idempotency-Key: a repeat of a request with the same key and body gets the first answer; the
// same key with another body gets 409. Answers are kept for a day.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface StoredAnswer {
  fingerprint: string;
  status: number;
  body: unknown;
}

export type Claim = { kind: 'new' } | { kind: 'replay'; answer: StoredAnswer } | { kind: 'conflict' } | { kind: 'in_progress' };

const TTL_S = 24 * 3600;
const PENDING_TTL_S = 120;

export class IdempotencyStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(tenant: string, scope: string, idemKey: string): string {
    return `${this.prefix}:idem:${tenant}:${scope}:${createHash('sha256').update(idemKey).digest('hex')}`;
  }

  /** Claims the key for this request, or says what the first request with it answered. */
  async claim(tenant: string, scope: string, idemKey: string, fingerprint: string): Promise<Claim> {
    const k = this.key(tenant, scope, idemKey);
    const pending = JSON.stringify({ pending: true, fingerprint });
    if ((await this.redis.set(k, pending, 'EX', PENDING_TTL_S, 'NX')) === 'OK') return { kind: 'new' };
    const raw = await this.redis.get(k);
    if (!raw) return this.claim(tenant, scope, idemKey, fingerprint);
    const stored = JSON.parse(raw) as StoredAnswer & { pending?: boolean };
    if (stored.fingerprint !== fingerprint) return { kind: 'conflict' };
    if (stored.pending) return { kind: 'in_progress' };
    return { kind: 'replay', answer: stored };
  }

  async complete(tenant: string, scope: string, idemKey: string, answer: StoredAnswer): Promise<void> {
    await this.redis.set(this.key(tenant, scope, idemKey), JSON.stringify(answer), 'EX', TTL_S);
  }

  /** Redis WAIT on the connection complete() writes on (replication.ts). */
  wait(numreplicas: number, timeout: number): Promise<number> {
    return this.redis.wait(numreplicas, timeout);
  }

  /** Frees the key after a refusal, so a corrected retry with the same key can go through. */
  async release(tenant: string, scope: string, idemKey: string): Promise<void> {
    await this.redis.del(this.key(tenant, scope, idemKey));
  }
}

export const fingerprintOf = (value: unknown): string => createHash('sha256').update(typeof value === 'string' ? value : JSON.stringify(value)).digest('hex');
