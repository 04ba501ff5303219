// The queue dashboard for operators (bull-board) at /admin/queues: every class's training queue
// and the webhook deliveries. Only with MAKAM_ADMIN_KEY set; its routes declare admin access, so
// the auth hook asks for the admin key as `Authorization: Bearer <key>` or as the password of
// HTTP Basic auth (which a browser asks for).
import fp from 'fastify-plugin';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { createRedis } from '@makam/shared/redis';
import { WebhookDelivery } from '../webhooks/delivery.ts';
import { declareAccess } from '../access.ts';
import { codeForStatus } from '../errors.ts';

export const BOARD_PATH = '/admin/queues';

export default fp(
  async (app) => {
    const adminKey = app.config.MAKAM_ADMIN_KEY;
    if (!adminKey) return; // no admin key, no board
    const conn = createRedis(app.config, { noReplicasWaitMs: app.config.MAKAM_REDIS_NOREPLICAS_WAIT_MS });
    conn.on('error', () => {});
    const webhookQueue = WebhookDelivery.queue(conn, app.config.MAKAM_QUEUE_PREFIX);
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(BOARD_PATH);
    createBullBoard({
      queues: [...[...app.queues.values()].map((q) => new BullMQAdapter(q)), new BullMQAdapter(webhookQueue)],
      serverAdapter,
      options: { uiConfig: { boardTitle: 'makam queues' } },
    });
    await app.register(async (scope) => {
      declareAccess(scope, 'admin');
      // bull-board answers its own refusals as {"error": {"key": "ERRORS..."}}: put them in the one shape.
      scope.addHook('onSend', async (_request, reply, payload) => {
        if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
        let body: unknown;
        try {
          body = JSON.parse(payload);
        } catch {
          body = null;
        }
        const error = (body as { error?: Record<string, unknown> } | null)?.error;
        if (error && typeof error.code === 'string' && typeof error.message === 'string' && 'param' in error) return payload;
        const said = (body as { message?: unknown } | null)?.message ?? error?.key;
        reply.header('content-type', 'application/json; charset=utf-8');
        return JSON.stringify({ error: { code: codeForStatus(reply.statusCode), message: `the queue board refused the request${typeof said === 'string' ? ` (${said})` : ''}; check the queue name and the request body`, param: null } });
      });
      await scope.register(serverAdapter.registerPlugin() as never, { prefix: BOARD_PATH });
    });
    app.addHook('onClose', async () => {
      await webhookQueue.close();
      conn.disconnect();
    });
  },
  { name: 'queue-board' },
);
