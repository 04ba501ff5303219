// One error shape for every refusal: {"error": {"code", "message", "param"}}.
import type { FastifyError, FastifyInstance } from 'fastify';

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly param: string | null;

  constructor(statusCode: number, code: string, message: string, param: string | null = null) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.param = param;
  }
}

export const notFound = (what: string, id: string): ApiError => new ApiError(404, 'not_found', `no ${what} with id ${id}`, 'id');

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  parentSchema?: { properties?: Record<string, unknown>; enum?: unknown[] };
}

function dotted(context: string | undefined, instancePath: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  return context === 'body' || !context ? parts.join('.') : [context.replace(/string$/, ''), ...parts].join('.');
}

/** Turns an ajv validation error into a message that names the field and what is accepted. */
export function describeValidation(err: FastifyError): { message: string; param: string | null } {
  const first = (err.validation?.[0] ?? null) as AjvError | null;
  if (!first) return { message: err.message, param: null };
  const context = err.validationContext === 'body' ? 'body' : err.validationContext;
  let param = dotted(context, first.instancePath);
  const join = (p: string, k: string) => (p ? `${p}.${k}` : k);
  switch (first.keyword) {
    case 'additionalProperties': {
      const field = String(first.params.additionalProperty);
      const accepted = Object.keys(first.parentSchema?.properties ?? {});
      param = join(param, field);
      return { param, message: `unknown field '${param}'${accepted.length ? `; accepted fields: ${accepted.join(', ')}` : ''}` };
    }
    case 'required': {
      param = join(param, String(first.params.missingProperty));
      return { param, message: `'${param}' is required` };
    }
    case 'enum':
      return { param, message: `'${param}' must be one of: ${(first.params.allowedValues as unknown[]).join(', ')}` };
    case 'const':
      return { param, message: `'${param}' must be ${JSON.stringify(first.params.allowedValue)}` };
    default:
      return { param: param || null, message: `'${param || context}' ${first.message ?? 'is invalid'}` };
  }
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError, request, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message, param: err.param } });
    }
    if ((err as FastifyError).validation) {
      const { message, param } = describeValidation(err as FastifyError);
      return reply.code(400).send({ error: { code: 'invalid_request', message, param } });
    }
    const status = (err as FastifyError).statusCode ?? 500;
    if (status < 500) {
      const code = (err as FastifyError).code?.replace(/^FST_ERR_/, '').toLowerCase() ?? 'invalid_request';
      return reply.code(status).send({ error: { code, message: err.message, param: null } });
    }
    const name = (err as Error).name ?? '';
    if (name === 'MaxRetriesPerRequestError' || /Connection is closed|ECONNREFUSED|Stream isn't writeable/.test(err.message)) {
      request.log.warn({ err: err.message }, 'redis unavailable');
      return reply.code(503).header('retry-after', '5').send({ error: { code: 'store_unavailable', message: 'the job store is unavailable; retry in a few seconds', param: null } });
    }
    request.log.error({ err }, 'request failed');
    // Redis away or another dependency down: say so without internals.
    return reply.code(503 === status ? 503 : 500).send({ error: { code: 'internal_error', message: 'the server could not complete the request; try again', param: null } });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: { code: 'route_not_found', message: `no route ${request.method} ${request.url.split('?')[0]}`, param: null } });
  });
}
