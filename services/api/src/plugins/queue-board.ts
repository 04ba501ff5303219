// The queue dashboard for operators (bull-board) at /admin/queues: every class's training queue
// and the webhook deliveries. Only with MAKAM_ADMIN_KEY set; requests carry the admin key as
// `Authorization: Bearer <key>` or as the password of HTTP Basic auth (which a browser asks for).
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { createRedis, sameSecret } from '@makam/shared';
import { WebhookDelivery } from '../webhooks/delivery.ts';

export const BOARD_PATH = '/admin/queues';

/** The key a request offers: a Bearer token, or the password of Basic credentials. */
export function offeredKey(request: FastifyRequest): string | null {
  const header = request.headers.authorization ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1]!;
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : null;
  }
  return null;
}

export default fp(
  async (app) => {
    const adminKey = app.config.MAKAM_ADMIN_KEY;
    if (!adminKey) return; // no admin key, no board
    const conn = createRedis(app.config);
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
      scope.addHook('onRequest', async (request, reply) => {
        const key = offeredKey(request);
        if (!key || !sameSecret(key, adminKey)) {
          return reply
            .code(401)
            .header('www-authenticate', 'Basic realm="makam admin", charset="UTF-8"')
            .send({ error: { code: 'unauthorized', message: 'the queue board needs the admin key (MAKAM_ADMIN_KEY) as a Bearer token or Basic auth password', param: 'Authorization' } });
        }
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
