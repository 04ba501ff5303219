// Live job events: the hub that shares one Redis reader per watched job among its watchers, and
// the `sse` route constraint that sends `Accept: text/event-stream` requests of
// GET /v1/jobs/:id/events to the streaming route while the JSON route keeps the others.
import fp from 'fastify-plugin';
import { JobEventHub } from '../events/job-event-hub.ts';

declare module 'fastify' {
  interface FastifyInstance {
    jobEvents: JobEventHub;
  }
}

/** The constraint value an event-stream request derives. */
export const SSE = 'text/event-stream';

export const wantsEventStream = (accept: string | string[] | undefined): boolean =>
  (Array.isArray(accept) ? accept.join(',') : (accept ?? '')).split(',').some((part) => part.split(';')[0]!.trim().toLowerCase() === SSE);

export default fp(
  async (app) => {
    const hub = new JobEventHub(app.redis, app.config, app.keys, app.config.MAKAM_REDIS_PREFIX, app.log);
    app.decorate('jobEvents', hub);
    app.addConstraintStrategy({
      name: 'sse',
      storage() {
        const handlers = new Map<string, unknown>();
        return { get: (v: string) => (handlers.get(v) ?? null) as never, set: (v: string, store: unknown) => void handlers.set(v, store) };
      },
      deriveConstraint: (req: { headers: Record<string, string | string[] | undefined> }) => (wantsEventStream(req.headers.accept) ? SSE : undefined) as never,
      // A request that asks for an event stream where no route streams falls back to the others.
      mustMatchWhenDerived: false,
    });
    // Open streams end before the server waits for its connections to close.
    app.addHook('preClose', async () => hub.close());
  },
  { name: 'live-events', dependencies: [] },
);
