import { Type } from 'typebox';
import { WEBHOOK_EVENTS, WEBHOOK_ID_PATTERN } from '../webhooks/webhook-store.ts';
import { Nullable } from './common.ts';

const EventType = Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e)) as never, { description: 'A job reaching a terminal status' });

export const CreateWebhookBody = Type.Object(
  {
    url: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048, description: 'Where events are POSTed (http or https)' }),
    events: Type.Optional(Type.Array(EventType, { minItems: 1, uniqueItems: true, description: `The events to send (default: all of ${WEBHOOK_EVENTS.join(', ')})` })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

export const WebhookIdParams = Type.Object({ id: Type.String({ pattern: WEBHOOK_ID_PATTERN, description: 'A webhook id (wh_...)' }) }, { additionalProperties: false });

const webhookFields = {
  id: Type.String(),
  object: Type.Literal('webhook'),
  tenant: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  description: Nullable(Type.String()),
  created_at: Type.String(),
};

export const Webhook = Type.Object(webhookFields);

export const WebhookCreated = Type.Object({
  ...webhookFields,
  secret: Type.String({ description: 'The signing secret, shown only now: X-Makam-Signature is sha256=HMAC-SHA256(secret, raw body) in hex' }),
});

export const WebhookList = Type.Object({ object: Type.Literal('list'), data: Type.Array(Webhook) });

export const WebhookDeleted = Type.Object({ id: Type.String(), object: Type.Literal('webhook'), deleted: Type.Literal(true) });

export const DeliveriesQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false });

export const DeliveryList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      object: Type.Literal('webhook_delivery'),
      event_id: Type.String(),
      event_type: Type.String(),
      job_id: Type.String(),
      attempt: Type.Integer(),
      response_status: Nullable(Type.Integer()),
      error: Nullable(Type.String()),
      ok: Type.Boolean(),
      will_retry: Type.Boolean(),
      duration_ms: Type.Integer(),
      created_at: Type.String(),
    }),
  ),
});
