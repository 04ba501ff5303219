// The web dashboard: prebuilt static files (services/dashboard/dist, built by scripts/env.sh and the image, so serving it
// needs no build step) at /dashboard/, and / sends browsers there. The page calls the same /v1
// API as everyone else, with the API key its user enters.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fp from 'fastify-plugin';
import fastifyStatic from '@fastify/static';
import { declareAccess } from '../access.ts';

export const DASHBOARD_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dashboard/dist');

export default fp(
  async (app) => {
    if (!existsSync(path.join(DASHBOARD_DIST, 'index.html'))) {
      app.log.warn({ dir: DASHBOARD_DIST }, 'dashboard not built; run npm run build -w @makam/dashboard');
      return;
    }
    // The page and its files are public (it holds no data; it asks its user for an API key).
    await app.register(async (scope) => {
      declareAccess(scope, 'public');
      await scope.register(fastifyStatic, {
        root: DASHBOARD_DIST,
        prefix: '/dashboard/',
        decorateReply: false,
        // Names are stable (no content hashes): revalidate so a new release shows at once.
        cacheControl: false,
        setHeaders: (res) => void res.header('cache-control', 'no-cache'),
      });
      scope.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard/'));
      scope.get('/dashboard', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard/'));
    });
  },
  { name: 'dashboard' },
);
