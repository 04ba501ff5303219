import { Type } from 'typebox';

/** Settings of what users and operators look at: live events, webhooks, the dashboard. */
export const OpsConfigProperties = {
  /** Milliseconds between heartbeat comments on a server-sent event stream. */
  MAKAM_SSE_HEARTBEAT_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: 300_000 }),
  /** Whether this API process delivers webhooks (turn off on replicas that should only serve requests). */
  MAKAM_WEBHOOK_DELIVERY: Type.Boolean({ default: true }),
  /** Attempts per webhook delivery, the first included. */
  MAKAM_WEBHOOK_ATTEMPTS: Type.Integer({ default: 8, minimum: 1, maximum: 30 }),
  /** The first retry's delay in milliseconds; each later one doubles it (10 s, 20 s, 40 s, ... about 21 min by the 8th). */
  MAKAM_WEBHOOK_BACKOFF_MS: Type.Integer({ default: 10_000, minimum: 10 }),
  /** How long a receiver may take to answer, in milliseconds. */
  MAKAM_WEBHOOK_TIMEOUT_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: 120_000 }),
  /** Let webhooks go to loopback and private addresses (receivers on the same private network); off, only public ones. */
  MAKAM_WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false }),
};
