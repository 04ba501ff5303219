// The front door. Every route declares its access (access.ts); the hook reads it on the route the
// router matched, so the raw URL's spelling (%76, %61, case) cannot change the answer:
// - public routes answer anyone;
// - tenant routes (every route that declares nothing) take an API key, Authorization: Bearer mk_...,
//   that names the tenant; keys are looked up by their sha256;
// - admin routes take the operator's admin key, as a Bearer token or a Basic password (browsers).
// Limits, in Redis so that every API process shares them (one atomic INCR per count, so two
// requests racing for the last place cannot both pass): requests a minute per client address and
// per tenant (all its keys together), and failed authentications a minute per address, counted
// apart with a lower limit; past it the address is refused before its key is looked at. The counts
// and the key's lookup are one Lua script (lua/admit-3.lua), one round trip a request: they were
// four, and Redis round trips were most of the API's time per request (bench/api-profile.ts). A
// route may name a hash it reads (config.admitRead): the script reads it once the request is
// admitted, so such a route (GET /v1/jobs/:id) makes no round trip of its own.
// A request that matches no route answers 404 whoever sends it.
import fp from 'fastify-plugin';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { normalizeIP } from '@fastify/rate-limit';
import { runScript } from '@makam/shared/lua/scripts';
import { ApiKeyStore, sameSecret, type ApiKeyRecord } from '../tenancy/api-keys.ts';
import { accessOf } from '../access.ts';
import { ApiError, sendApiError } from '../errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeyStore;
  }
  interface FastifyContextConfig {
    /**
     * A hash the route reads, read by the front door in its own round trip once the request is
     * admitted (never before: a refused request reads nothing); null to read none. Found in
     * request.admittedRead.
     */
    admitRead?: (request: FastifyRequest) => string | null;
  }
  interface FastifyRequest {
    /** The tenant of the request's API key (empty on admin and public routes). */
    tenant: string;
    /** The hash config.admitRead named, as field/value pairs (none: empty); null when none was read. */
    admittedRead: string[] | null;
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
    app.decorateRequest('admittedRead', null);

    // The counters' keys hold ':ratelimit:' (tests that compare Redis before and after leave them out).
    const counters = `${config.MAKAM_REDIS_PREFIX}:ratelimit:`;
    const fixedArgs = [WINDOW_MS, config.MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE, config.MAKAM_AUTH_FAILURES_PER_MINUTE];
    const tenantArgs = [`${counters}tenant:`, config.MAKAM_RATE_LIMIT_PER_MINUTE];
    /** One run of lua/admit-3.lua: the step that refused (or 'ok'), the window it has left, the key's record, the route's read. */
    const count = async (request: FastifyRequest, mode: 'address' | 'failures' | 'key' | 'fail', recordKey = '', readKey = ''): Promise<{ step: string; ttlInSeconds: number; record: ApiKeyRecord | null; read: string[] | null }> => {
      const ip = normalizeIP(request.ip);
      const [step, , ttl, raw, read] = (await runScript(app.redis, 'admit', [`${counters}address:${ip}`, `${counters}authfail:${ip}`, recordKey || `${counters}none`], [...fixedArgs, mode, ...tenantArgs, readKey])) as [string, number?, number?, string?, string[]?];
      return { step, ttlInSeconds: Math.ceil((ttl ?? 0) / 1000), record: raw ? (JSON.parse(raw) as ApiKeyRecord) : null, read: read ?? null };
    };

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
      // A tenant's well-formed key is looked up in the same round trip as the counts, after them.
      const token = access === 'tenant' ? bearer(request.headers.authorization) : null;
      const recordKey = token ? app.apiKeys.recordKey(token) : null;
      const readKey = recordKey ? (request.routeOptions.config.admitRead?.(request) ?? '') : '';
      const admitted = await count(request, access === null ? 'address' : recordKey ? 'key' : 'failures', recordKey ?? '', readKey);
      if (admitted.step === 'address') {
        throw limited(reply, admitted.ttlInSeconds, `more than ${config.MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE} requests a minute from this address`, null);
      }
      if (access === null) return; // the not-found handler answers
      // An address that failed too often is refused before its key is looked at, so guessing
      // keys learns nothing once the limit is reached.
      if (admitted.step === 'failures') {
        throw limited(reply, admitted.ttlInSeconds, `more than ${config.MAKAM_AUTH_FAILURES_PER_MINUTE} failed authentications a minute from this address`, 'Authorization');
      }
      const fail = async (message: string) => {
        await count(request, 'fail');
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

      if (!token) throw new ApiError(401, 'unauthorized', 'send an API key as Authorization: Bearer <key>', 'Authorization');
      const record = admitted.record;
      if (!record) throw await fail('the API key is not valid or has been revoked; send a current key as Authorization: Bearer <key>');
      request.tenant = record.tenant;
      request.apiKeyId = record.id;
      request.admittedRead = admitted.read;
      // Bound on the request's own child logger, which reply.log also is: a new child would miss the
      // completion line. (Without a logger, Fastify's stand-in has no bindings to set.)
      const log = request.log as Partial<Pick<Logger, 'setBindings'>>;
      if (log.setBindings) log.setBindings({ tenant: record.tenant, keyId: record.id });
      if (admitted.step === 'tenant') {
        throw limited(reply, admitted.ttlInSeconds, `more than ${config.MAKAM_RATE_LIMIT_PER_MINUTE} requests a minute for tenant ${record.tenant} (all its keys together)`, null);
      }
    }
  },
  { name: 'auth' },
);
