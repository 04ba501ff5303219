// Webhooks: a tenant registers a URL and is sent its jobs' terminal states, signed with the
// webhook's secret (HMAC-SHA256 of the raw body). Records are hashes; each webhook keeps a log of
// its delivery attempts, newest first, capped.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { monotonicFactory } from 'ulid';
import { runScript } from '@makam/shared/lua/scripts';
import { execTransaction } from '@makam/shared/redis';

const ulid = monotonicFactory();

export const WEBHOOK_ID_PATTERN = '^wh_[0-9a-hjkmnp-tv-z]{26}$';
export const newWebhookId = (): string => `wh_${ulid().toLowerCase()}`;
export const newEventId = (): string => `evt_${ulid().toLowerCase()}`;

/** The events a webhook can ask for: a job reaching a terminal status. */
export const WEBHOOK_EVENTS = ['job.succeeded', 'job.failed', 'job.cancelled'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** The header names a receiver checks. */
export const SIGNATURE_HEADER = 'x-makam-signature';
export const TIMESTAMP_HEADER = 'x-makam-timestamp';

export interface WebhookRecord {
  id: string;
  object: 'webhook';
  tenant: string;
  url: string;
  events: WebhookEventType[];
  description: string | null;
  created_at: string;
}

/** One attempt to deliver one event. */
export interface DeliveryAttempt {
  object: 'webhook_delivery';
  /** The event's id; every attempt at one event shares it (receivers dedupe on it). */
  event_id: string;
  event_type: WebhookEventType;
  job_id: string;
  attempt: number;
  /** The receiver's HTTP status, or null when no response came. */
  response_status: number | null;
  /** Why the attempt failed (network error, timeout, non-2xx status), or null. */
  error: string | null;
  ok: boolean;
  /** Whether another attempt is scheduled after this failed one. */
  will_retry: boolean;
  duration_ms: number;
  created_at: string;
}

/** `sha256=<hex>`: the HMAC-SHA256 of the raw body under the webhook's secret. */
export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Checks a signature header in constant time, as a receiver would. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined | null): boolean {
  const want = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header ?? '');
  return got.length === want.length && timingSafeEqual(got, want);
}

const DELIVERY_LOG_MAX = 1000;
/** A logged attempt's error, in characters (a receiver's or a library's message may be long). */
const DELIVERY_ERROR_MAX = 500;
/** Webhooks a tenant may have. */
export const MAX_WEBHOOKS_PER_TENANT = 25;

export class TooManyWebhooksError extends Error {
  readonly max: number;
  constructor(max: number) {
    super(`a tenant may have ${max} webhooks; delete one (DELETE /v1/webhooks/{id}) before creating another`);
    this.max = max;
  }
}

export class WebhookStore {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(id: string): string {
    return `${this.prefix}:webhook:${id}`;
  }

  private tenantKey(tenant: string): string {
    return `${this.prefix}:tenant:${tenant}:webhooks`;
  }

  private logKey(id: string): string {
    return `${this.prefix}:webhook:${id}:deliveries`;
  }

  /** Creates a webhook; its secret is returned here and never again. Throws TooManyWebhooksError when the tenant has `max`
   * (counted and added in one step, lua/createWebhook-2.lua, so simultaneous creations cannot pass it). */
  async create(tenant: string, url: string, events: WebhookEventType[], description: string | null, max = MAX_WEBHOOKS_PER_TENANT): Promise<{ record: WebhookRecord; secret: string }> {
    const record: WebhookRecord = { id: newWebhookId(), object: 'webhook', tenant, url, events, description, created_at: new Date().toISOString() };
    const secret = `whsec_${randomBytes(24).toString('base64url')}`;
    const made = await runScript(this.redis, 'createWebhook', [this.tenantKey(tenant), this.key(record.id)], [max, record.id, JSON.stringify(record), secret]);
    if (made !== 1) throw new TooManyWebhooksError(max);
    return { record, secret };
  }

  async get(id: string): Promise<WebhookRecord | null> {
    const raw = await this.redis.hget(this.key(id), 'record');
    return raw ? (JSON.parse(raw) as WebhookRecord) : null;
  }

  async secret(id: string): Promise<string | null> {
    return this.redis.hget(this.key(id), 'secret');
  }

  /** A tenant's webhooks, oldest first. */
  async list(tenant: string): Promise<WebhookRecord[]> {
    const ids = (await this.redis.smembers(this.tenantKey(tenant))).sort();
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is WebhookRecord => r !== null);
  }

  async delete(record: WebhookRecord): Promise<void> {
    await execTransaction(this.redis, () => this.redis.multi().del(this.key(record.id), this.logKey(record.id)).srem(this.tenantKey(record.tenant), record.id));
  }

  /**
   * Adds a delivery attempt to the webhook's log, through `via` (the delivery worker's own
   * connection, which waits out a primary without a replica rather than give up as a request's does:
   * a refused entry would be lost and the delivered event sent again).
   */
  async logAttempt(id: string, attempt: DeliveryAttempt, via: Redis = this.redis): Promise<void> {
    // A webhook deleted while a delivery was in flight keeps no log.
    if (!(await via.exists(this.key(id)))) return;
    const entry = { ...attempt, error: attempt.error && attempt.error.length > DELIVERY_ERROR_MAX ? `${attempt.error.slice(0, DELIVERY_ERROR_MAX)}…` : attempt.error };
    await execTransaction(via, () => via.multi().lpush(this.logKey(id), JSON.stringify(entry)).ltrim(this.logKey(id), 0, DELIVERY_LOG_MAX - 1));
  }

  /** Delivery attempts, newest first. */
  async deliveries(id: string, limit: number): Promise<DeliveryAttempt[]> {
    return (await this.redis.lrange(this.logKey(id), 0, limit - 1)).map((s) => JSON.parse(s) as DeliveryAttempt);
  }
}
