// The OpenAPI 3.1 document, generated from the same route schemas that validate requests, at
// GET /openapi.json, and a docs page (Swagger UI) at /docs. Registered before any route, so
// every route that is not hidden is in it.
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { declareAccess } from '../access.ts';
import { STREAM_ID_PATTERN } from '../schemas/common.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered after this plugin, and whether it is left out of the document. */
    registeredRoutes: Array<{ method: string; url: string; hidden: boolean }>;
  }
}

type Operation = { responses?: Record<string, { description?: string; content?: Record<string, unknown> }>; parameters?: unknown[] };

export default fp(
  async (app) => {
    const registered: Array<{ method: string; url: string; hidden: boolean }> = [];
    app.decorate('registeredRoutes', registered);
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) registered.push({ method, url: route.url, hidden: Boolean((route.schema as { hide?: boolean } | undefined)?.hide) });
    });
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'makam',
          version: '1',
          description:
            'Fine-tuning jobs for text classifiers: datasets, jobs, their events (also live as server-sent events), metrics, artifacts, webhooks. Errors are `{"error": {"code", "message", "param"}}`.',
        },
        components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (mk_...); it names the tenant' } } },
      },
      // Routes under /v1 take an API key.
      transform: ({ schema, url }) => {
        const out = { ...(schema ?? {}) } as Record<string, unknown>;
        if (url.startsWith('/v1/')) out.security = [{ apiKey: [] }];
        return { schema: out as never, url };
      },
      // The event list also answers as a server-sent event stream (a route of its own, hidden).
      transformObject: (documentObject) => {
        const doc = (documentObject as { openapiObject: Record<string, unknown> }).openapiObject as { paths?: Record<string, Record<string, Operation>> };
        // A prefix's '/' route answers at /v1/jobs as well as /v1/jobs/: document the first.
        for (const [p, item] of Object.entries(doc.paths ?? {})) {
          if (p.length > 1 && p.endsWith('/')) {
            delete doc.paths![p];
            doc.paths![p.slice(0, -1)] = { ...item, ...doc.paths![p.slice(0, -1)] };
          }
        }
        const op = doc.paths?.['/v1/jobs/{id}/events']?.get;
        const ok = op?.responses?.['200'];
        if (op && ok) {
          ok.description = 'The event log as JSON, or with `Accept: text/event-stream` a live stream of server-sent events';
          ok.content = {
            ...ok.content,
            'text/event-stream': {
              schema: {
                type: 'string',
                description:
                  'One message per event: `id` (the cursor), `event` (its type), `data` (the same JSON object as an item of the list). Comment lines are heartbeats. After the terminal status comes `event: end` and the stream closes.',
              },
            },
          };
          op.responses!['204'] = { description: 'Stream requested after the terminal event: nothing will follow' };
          op.parameters = [
            ...(op.parameters ?? []),
            { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string', pattern: STREAM_ID_PATTERN }, description: 'Resume a stream after this event id' },
          ];
        }
        return doc as never;
      },
    });
    // The document and its page are public: they describe the API, they hold no data.
    await app.register(async (scope) => {
      declareAccess(scope, 'public');
      await scope.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } });
      scope.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    });
  },
  { name: 'openapi' },
);
