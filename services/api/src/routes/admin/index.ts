import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TENANT_PATTERN } from '../../tenancy/api-keys.ts';
import { declareAccess } from '../../access.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses, Nullable } from '../../schemas/common.ts';

const ApiKey = Type.Object({
  id: Type.String(),
  object: Type.Literal('api_key'),
  tenant: Type.String(),
  name: Nullable(Type.String()),
  prefix: Type.String(),
  created_at: Type.String(),
  revoked_at: Nullable(Type.String()),
});

/** Key management with the admin key: create (the secret is shown once), list, revoke. */
const routes: FastifyPluginAsyncTypebox = async (app) => {
  declareAccess(app, 'admin');
  app.post(
    '/keys',
    {
      schema: {
        summary: 'Create an API key for a tenant (admin)',
        body: Type.Object({ tenant: Type.String({ pattern: TENANT_PATTERN }), name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false }),
        response: { 201: Type.Object({ key: Type.String({ description: 'The secret, shown only now' }), api_key: ApiKey }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { key, record } = await app.apiKeys.create(request.body.tenant, request.body.name ?? null);
      request.log.info({ keyId: record.id, tenant: record.tenant }, 'api key created');
      return reply.code(201).send({ key, api_key: record });
    },
  );
  app.get(
    '/keys',
    {
      schema: {
        summary: 'List API keys (admin)',
        querystring: Type.Object({ tenant: Type.Optional(Type.String({ pattern: TENANT_PATTERN })) }, { additionalProperties: false }),
        response: { 200: Type.Object({ object: Type.Literal('list'), data: Type.Array(ApiKey) }), ...errorResponses },
      },
    },
    async (request) => ({ object: 'list' as const, data: await app.apiKeys.list(request.query.tenant) }),
  );
  app.delete(
    '/keys/:id',
    {
      schema: {
        summary: 'Revoke an API key (admin)',
        params: Type.Object({ id: Type.String({ pattern: '^key_[0-9a-z]{26}$' }) }, { additionalProperties: false }),
        response: { 200: ApiKey, ...errorResponses },
      },
    },
    async (request) => {
      const record = await app.apiKeys.revoke(request.params.id);
      if (!record) throw new ApiError(404, 'not_found', `no API key with id ${request.params.id}`, 'id');
      request.log.info({ keyId: record.id }, 'api key revoked');
      return record;
    },
  );
};

export default routes;
