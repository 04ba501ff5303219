// Webhooks of the caller's tenant: register a URL (the signing secret is returned once), list,
// read, delete, and read its delivery log (every attempt, newest first).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { MAX_WEBHOOKS_PER_TENANT, TooManyWebhooksError, WEBHOOK_EVENTS, type WebhookRecord } from '../../webhooks/webhook-store.ts';
import { ApiError, notFound } from '../../errors.ts';
import { refusedWebhookUrl } from '../../webhooks/address-policy.ts';
import { errorResponses } from '../../schemas/common.ts';
import { CreateWebhookBody, DeliveriesQuery, DeliveryList, Webhook, WebhookCreated, WebhookDeleted, WebhookIdParams, WebhookList } from '../../schemas/webhooks.ts';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // Another tenant's webhook answers exactly as a missing one does.
  const load = async (request: FastifyRequest, id: string): Promise<WebhookRecord> => {
    const hook = await app.webhooks.get(id);
    if (!hook || hook.tenant !== request.tenant) throw notFound('webhook', id);
    return hook;
  };

  app.post(
    '/',
    { schema: { summary: 'Register a webhook for terminal job states (the secret is returned only here)', body: CreateWebhookBody, response: { 201: WebhookCreated, ...errorResponses } } },
    async (request, reply) => {
      const { url, events, description } = request.body;
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new ApiError(400, 'invalid_request', `'url' is not a valid URL: ${url}`, 'url');
      }
      if (!app.config.MAKAM_WEBHOOK_ALLOW_PRIVATE) {
        const refused = await refusedWebhookUrl(parsed);
        if (refused) throw new ApiError(400, 'webhook_url_not_allowed', `'url' cannot receive webhooks: ${refused}`, 'url');
      }
      const { record, secret } = await app.webhooks.create(request.tenant, url, (events as WebhookRecord['events'] | undefined) ?? [...WEBHOOK_EVENTS], description ?? null, MAX_WEBHOOKS_PER_TENANT).catch((err: unknown) => {
        if (err instanceof TooManyWebhooksError) throw new ApiError(409, 'too_many_webhooks', err.message, null);
        throw err;
      });
      request.log.info({ webhookId: record.id }, 'webhook created');
      return reply.code(201).send({ ...record, secret });
    },
  );

  app.get('/', { schema: { summary: "List the tenant's webhooks", response: { 200: WebhookList, ...errorResponses } } }, async (request) => ({
    object: 'list' as const,
    data: await app.webhooks.list(request.tenant),
  }));

  app.get('/:id', { schema: { summary: 'Get a webhook', params: WebhookIdParams, response: { 200: Webhook, ...errorResponses } } }, async (request) => load(request, request.params.id));

  app.delete(
    '/:id',
    { schema: { summary: 'Delete a webhook (deliveries in flight are dropped)', params: WebhookIdParams, response: { 200: WebhookDeleted, ...errorResponses } } },
    async (request) => {
      const hook = await load(request, request.params.id);
      await app.webhooks.delete(hook);
      return { id: hook.id, object: 'webhook' as const, deleted: true as const };
    },
  );

  app.get(
    '/:id/deliveries',
    { schema: { summary: "The webhook's delivery attempts, newest first", params: WebhookIdParams, querystring: DeliveriesQuery, response: { 200: DeliveryList, ...errorResponses } } },
    async (request) => {
      await load(request, request.params.id);
      return { object: 'list' as const, data: await app.webhooks.deliveries(request.params.id, request.query.limit) };
    },
  );
};

export default routes;
