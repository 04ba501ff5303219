// The webhook registry, and (unless MAKAM_WEBHOOK_DELIVERY=false) this process's share of the
// delivery work: see webhooks/delivery.ts for who sends and why.
import fp from 'fastify-plugin';
import { WebhookStore } from '../webhooks/webhook-store.ts';
import { WebhookDelivery } from '../webhooks/delivery.ts';

declare module 'fastify' {
  interface FastifyInstance {
    webhooks: WebhookStore;
  }
}

export default fp(
  async (app) => {
    const config = app.config;
    app.decorate('webhooks', new WebhookStore(app.redis, config.MAKAM_REDIS_PREFIX));
    if (!config.MAKAM_WEBHOOK_DELIVERY) return;
    const delivery = new WebhookDelivery({
      redisSettings: config,
      queuePrefix: config.MAKAM_QUEUE_PREFIX,
      keys: app.keys,
      redis: app.redis,
      jobs: app.jobs,
      webhooks: app.webhooks,
      attempts: config.MAKAM_WEBHOOK_ATTEMPTS,
      backoffMs: config.MAKAM_WEBHOOK_BACKOFF_MS,
      timeoutMs: config.MAKAM_WEBHOOK_TIMEOUT_MS,
      allowPrivate: config.MAKAM_WEBHOOK_ALLOW_PRIVATE,
      log: app.log.child({ component: 'webhooks' }),
      onAttempt: (outcome) => app.metrics?.webhookDeliveries.inc({ outcome }),
    });
    app.addHook('onReady', async () => delivery.start());
    app.addHook('onClose', async () => delivery.close());
  },
  { name: 'webhooks' },
);
