// The front door. Every route declares its access (access.ts); the hook reads it on the route the
// router matched, so the raw URL's spelling (%76, %61, case) cannot change the answer:
// - public routes answer anyone;
// - tenant routes (every route that declares nothing) take an API key, Authorization: Bearer mk_...,
//   that names the tenant; keys are looked up by their sha256;
// - admin routes take the operator's admin key, as a Bearer token or a Basic password (browsers).
// Limits, in Redis so that every API process shares them (@fastify/rate-limit's store, one atomic
// INCR per request, so two requests racing for the last place cannot both pass): requests a minute
// per client address and per tenant (all its keys together), and failed authentications a minute
// per address, counted apart with a lower limit; past it the address is refused before its key is
// looked at. A request that matches no route answers 404 whoever sends it.
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import { ApiKeyStore, sameSecret } from '../tenancy/api-keys.ts';
import { accessOf } from '../access.ts';
import { ApiError, sendApiError } from '../errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeyStore;
  }
  interface FastifyRequest {
    /** The tenant of the request's API key (empty on admin and public routes). */
    tenant: string;
    /** The API key's id, for logs ('admin' for the admin key). */
    apiKeyId: string | null;
  }
}

function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m ? m[1]! : null;
}

/** The key a request offers for an admin route: a Bearer token, or the password of Basic credentials. */
export function offeredKey(request: FastifyRequest): string | null {
  const header = request.headers.authorization ?? '';
  const token = bearer(header);
  if (token) return token;
  const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : null;
  }
  return null;
}

const WINDOW_MS = 60_000;

export default fp(
  async (app) => {
    const config = app.config;
    app.decorate('apiKeys', new ApiKeyStore(app.redis, config.MAKAM_REDIS_PREFIX));
    app.decorateRequest('tenant', '');
    app.decorateRequest('apiKeyId', null);

    // No global hook: the limits below are applied by the auth hook, which knows the route's access.
    await app.register(rateLimit, { global: false, timeWindow: WINDOW_MS, redis: app.redis, nameSpace: `${config.MAKAM_REDIS_PREFIX}:ratelimit:` });
    const address = (request: FastifyRequest) => normalizeIP(request.ip);
    const perAddress = app.createRateLimit({ keyGenerator: (r) => `address:${address(r)}`, max: config.MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE, timeWindow: WINDOW_MS });
    const perTenant = app.createRateLimit({ keyGenerator: (r) => `tenant:${r.tenant}`, max: config.MAKAM_RATE_LIMIT_PER_MINUTE, timeWindow: WINDOW_MS });
    const authFailures = app.createRateLimit({ keyGenerator: (r) => `authfail:${address(r)}`, max: config.MAKAM_AUTH_FAILURES_PER_MINUTE, timeWindow: WINDOW_MS });

    const limited = (reply: FastifyReply, ttlInSeconds: number, message: string, param: string | null) => {
      const after = Math.max(1, ttlInSeconds);
      reply.header('retry-after', String(after));
      return new ApiError(429, 'rate_limited', `${message}; retry in ${after} s`, param);
    };

    // Refusals are sent here, not thrown: a third-party plugin's scope (the queue board) has an
    // error handler of its own that knows nothing of the error shape.
    app.addHook('onRequest', async (request, reply) => {
      try {
        await admit(request, reply);
      } catch (err) {
        if (err instanceof ApiError) return sendApiError(reply, err);
        throw err;
      }
    });

    async function admit(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const access = request.is404 ? null : accessOf(request.routeOptions.config);
      if (access === 'public') return;
      const byAddress = await perAddress(request);
      if (!byAddress.isAllowed && byAddress.isExceeded) {
        throw limited(reply, byAddress.ttlInSeconds, `more than ${byAddress.max} requests a minute from this address`, null);
      }
      if (access === null) return; // the not-found handler answers
      // An address that failed too often is refused before its key is looked at, so guessing
      // keys learns nothing once the limit is reached.
      const failures = await authFailures(request, { increment: false });
      if (!failures.isAllowed && failures.remaining === 0) {
        throw limited(reply, failures.ttlInSeconds, `more than ${failures.max} failed authentications a minute from this address`, 'Authorization');
      }
      const fail = async (message: string) => {
        await authFailures(request);
        if (access === 'admin') reply.header('www-authenticate', 'Basic realm="makam admin", charset="UTF-8"');
        return new ApiError(401, 'unauthorized', message, 'Authorization');
      };

      if (access === 'admin') {
        const key = offeredKey(request);
        if (!key) {
          // No key is no guess: not counted as a failure.
          reply.header('www-authenticate', 'Basic realm="makam admin", charset="UTF-8"');
          throw new ApiError(401, 'unauthorized', 'admin routes need the admin key (MAKAM_ADMIN_KEY) as a Bearer token or a Basic password', 'Authorization');
        }
        const admin = config.MAKAM_ADMIN_KEY;
        if (!admin || !sameSecret(key, admin)) throw await fail('the admin key is not valid; admin routes need MAKAM_ADMIN_KEY');
        request.apiKeyId = 'admin';
        return;
      }

      const key = bearer(request.headers.authorization);
      if (!key) throw new ApiError(401, 'unauthorized', 'send an API key as Authorization: Bearer <key>', 'Authorization');
      const record = await app.apiKeys.verify(key);
      if (!record) throw await fail('the API key is not valid or has been revoked; send a current key as Authorization: Bearer <key>');
      request.tenant = record.tenant;
      request.apiKeyId = record.id;
      request.log = request.log.child({ tenant: record.tenant, keyId: record.id });
      const byTenant = await perTenant(request);
      if (!byTenant.isAllowed && byTenant.isExceeded) {
        throw limited(reply, byTenant.ttlInSeconds, `more than ${byTenant.max} requests a minute for tenant ${record.tenant} (all its keys together)`, null);
      }
    }
  },
  { name: 'auth' },
);
