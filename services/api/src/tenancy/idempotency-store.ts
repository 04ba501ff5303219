// Idempotency-Key: a repeat of a request with the same key and body gets the first answer; the
// same key with another body gets 409. Answers are kept for a day.
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { runScript } from '@makam/shared/lua/scripts';
import { isRefusedWrite } from '@makam/shared/redis';

export interface StoredAnswer {
  fingerprint: string;
  status: number;
  body: unknown;
}

/** `new`: this request holds the key; `claim` is what release and complete need. */
export type Claim = { kind: 'new'; claim: string } | { kind: 'replay'; answer: StoredAnswer } | { kind: 'conflict' } | { kind: 'in_progress' };

const TTL_S = 24 * 3600;
const PENDING_TTL_S = 120;

export class IdempotencyStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly background: Redis | null;

  /**
   * `background`: a connection that waits for a replica (createRedis without noReplicasWaitMs), for
   * what a request refused for want of one leaves to do once it is back (release, complete).
   */
  constructor(redis: Redis, prefix: string, background: Redis | null = null) {
    this.redis = redis;
    this.prefix = prefix;
    this.background = background;
  }

  private key(tenant: string, scope: string, idemKey: string): string {
    return `${this.prefix}:idem:${tenant}:${scope}:${createHash('sha256').update(idemKey).digest('hex')}`;
  }

  /** Claims the key for this request, or says what the first request with it answered. */
  async claim(tenant: string, scope: string, idemKey: string, fingerprint: string): Promise<Claim> {
    const k = this.key(tenant, scope, idemKey);
    // Its own token: a late release frees this claim only (lua/releaseClaim-1.lua).
    const pending = JSON.stringify({ pending: true, fingerprint, claim: randomUUID() });
    if ((await this.redis.set(k, pending, 'EX', PENDING_TTL_S, 'NX')) === 'OK') return { kind: 'new', claim: pending };
    const raw = await this.redis.get(k);
    if (!raw) return this.claim(tenant, scope, idemKey, fingerprint);
    const stored = JSON.parse(raw) as StoredAnswer & { pending?: boolean };
    if (stored.fingerprint !== fingerprint) return { kind: 'conflict' };
    if (stored.pending) return { kind: 'in_progress' };
    return { kind: 'replay', answer: stored };
  }

  /**
   * Stores the answer. Refused for want of a replica (or by a demoted primary) after the request's
   * bound, it is stored by the background connection once a primary takes it (a retry meanwhile:
   * 409 in progress; after: the answer), and the refusal is thrown: what the request made is kept,
   * so the key must not be freed.
   */
  async complete(tenant: string, scope: string, idemKey: string, answer: StoredAnswer): Promise<void> {
    const store = (redis: Redis) => redis.set(this.key(tenant, scope, idemKey), JSON.stringify(answer), 'EX', TTL_S);
    await store(this.redis).catch((err: unknown) => {
      if (this.background && isRefusedWrite(err)) void store(this.background).catch(() => undefined);
      throw err;
    });
  }

  /** Redis WAIT on the connection complete() writes on (replication.ts). */
  wait(numreplicas: number, timeout: number): Promise<number> {
    return this.redis.wait(numreplicas, timeout);
  }

  /**
   * Frees the key after a refusal, so a corrected retry with the same key can go through. Refused for
   * want of a replica or by a demoted primary (the request has waited its bound already), the
   * background connection frees it once a primary takes it, not the claim's expiry PENDING_TTL_S
   * later; the caller is not kept waiting.
   */
  async release(tenant: string, scope: string, idemKey: string, claim: string): Promise<void> {
    const free = (redis: Redis) => runScript(redis, 'releaseClaim', [this.key(tenant, scope, idemKey)], [claim]);
    await free(this.redis).catch((err: unknown) => {
      if (!this.background || !isRefusedWrite(err)) throw err;
      void free(this.background).catch(() => undefined);
    });
  }
}

export const fingerprintOf = (value: unknown): string => createHash('sha256').update(typeof value === 'string' ? value : JSON.stringify(value)).digest('hex');
