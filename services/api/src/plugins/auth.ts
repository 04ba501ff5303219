// Every /v1 request carries an API key (Authorization: Bearer mk_...) that names its tenant;
// /v1/admin routes take the operator's admin key instead. Keys are looked up by their sha256.
import fp from 'fastify-plugin';
import { ApiKeyStore, sameSecret } from '@makam/shared';
import { ApiError } from '../errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeyStore;
  }
  interface FastifyRequest {
    /** The tenant of the request's API key (empty on admin and public routes). */
    tenant: string;
    /** The API key's id, for rate limits and logs. */
    apiKeyId: string | null;
  }
}

function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m ? m[1]! : null;
}

export default fp(async (app) => {
  app.decorate('apiKeys', new ApiKeyStore(app.redis, app.config.MAKAM_REDIS_PREFIX));
  app.decorateRequest('tenant', '');
  app.decorateRequest('apiKeyId', null);
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!;
    if (!path.startsWith('/v1/')) return;
    const key = bearer(request.headers.authorization);
    if (!key) throw new ApiError(401, 'unauthorized', 'send an API key as Authorization: Bearer <key>', 'Authorization');
    if (path.startsWith('/v1/admin/')) {
      const admin = app.config.MAKAM_ADMIN_KEY;
      if (!admin || !sameSecret(key, admin)) throw new ApiError(401, 'unauthorized', 'admin routes need the admin key (MAKAM_ADMIN_KEY)', 'Authorization');
      request.apiKeyId = 'admin';
      return;
    }
    const record = await app.apiKeys.verify(key);
    if (!record) throw new ApiError(401, 'unauthorized', 'the API key is not valid or has been revoked', 'Authorization');
    request.tenant = record.tenant;
    request.apiKeyId = record.id;
    request.log = request.log.child({ tenant: record.tenant, keyId: record.id });
  });
});
