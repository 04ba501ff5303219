// One error shape for every refusal: {"error": {"code", "message", "param"}}.
import { STATUS_CODES as HTTP_STATUS_TEXT } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
// ioredis exports its error classes only from this path (its index exports ReplyError alone).
import { MaxRetriesPerRequestError } from 'ioredis/built/errors/index.js';
import { isNoReplicas, isReadOnly } from '@makam/shared/redis';
import { PATTERN_HINTS } from './schemas/common.ts';

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly param: string | null;
  /** Seconds for a Retry-After header (a 503 the client should retry). */
  readonly retryAfterS: number | null;
  /** More fields of the error object (ErrorResponse lists them), such as the job a 503 not_replicated made. */
  readonly fields: Record<string, string>;

  constructor(statusCode: number, code: string, message: string, param: string | null = null, retryAfterS: number | null = null, fields: Record<string, string> = {}) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.param = param;
    this.retryAfterS = retryAfterS;
    this.fields = fields;
  }
}

export const notFound = (what: string, id: string): ApiError => new ApiError(404, 'not_found', `no ${what} with id ${id}`, 'id');

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  parentSchema?: { properties?: Record<string, unknown>; enum?: unknown[]; oneOf?: unknown[] };
}

function dotted(context: string | undefined, instancePath: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  return context === 'body' || !context ? parts.join('.') : [context.replace(/string$/, ''), ...parts].join('.');
}

interface BranchSchema {
  const?: unknown;
  enum?: unknown[];
  type?: string;
  description?: string;
  anyOf?: BranchSchema[];
}

/** What one branch of a union accepts, in words: a constant, "null", "a list", or its description. */
function accepted(branch: BranchSchema): string[] {
  if (branch.anyOf) return branch.anyOf.flatMap(accepted);
  if (branch.const !== undefined) return [JSON.stringify(branch.const)];
  if (branch.enum) return branch.enum.map((v) => JSON.stringify(v));
  if (branch.type === 'null') return ['null'];
  const noun = { object: 'an object', array: 'a list', string: 'a string', number: 'a number', integer: 'an integer', boolean: 'true or false' }[branch.type ?? ''] ?? 'a value';
  return [branch.description ? `${noun} (${branch.description})` : noun];
}

/** Turns an ajv validation error into a message that names the field and what is accepted. */
export function describeValidation(err: FastifyError): { message: string; param: string | null } {
  const errors = (err.validation ?? []) as unknown as AjvError[];
  const context = err.validationContext === 'body' ? 'body' : err.validationContext;
  // A union (anyOf) fails last, after one error per branch; ajv's first error is then only the first
  // branch's ("must be \"none\""), which hides the other choices.
  const union = errors.at(-1)?.keyword === 'anyOf' ? errors.at(-1)! : null;
  if (union) {
    const deeper = errors.filter((e) => e.instancePath.length > union.instancePath.length);
    if (deeper.length === 0) {
      const param = dotted(context, union.instancePath);
      const choices = accepted({ anyOf: (union.parentSchema as { anyOf?: BranchSchema[] } | undefined)?.anyOf ?? [] });
      return { param: param || null, message: `'${param || context}' must be ${choices.length > 1 ? `one of: ${choices.join(', ')}` : choices[0] ?? 'valid'}` };
    }
    // The value had the shape of a branch (an object, a list) and failed inside it: say where.
    return describeOne(deeper.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a)), context, err.message);
  }
  return describeOne(errors[0] ?? null, context, err.message);
}

function describeOne(first: AjvError | null, context: string | undefined, fallback: string): { message: string; param: string | null } {
  if (!first) return { message: fallback, param: null };
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
    case 'pattern': {
      const hint = PATTERN_HINTS[String(first.params.pattern)];
      if (hint) return { param, message: `'${param}' must be ${hint}` };
      return { param: param || null, message: `'${param || context}' ${first.message ?? 'is invalid'}` };
    }
    case 'const':
      return { param, message: `'${param}' must be ${JSON.stringify(first.params.allowedValue)}` };
    case 'discriminator': {
      // A body of several kinds (oneOf by `kind`): the tag is missing or names no kind.
      const tag = String(first.params.tag);
      const branches = (first.parentSchema?.oneOf ?? []) as Array<{ properties?: Record<string, { enum?: unknown[]; const?: unknown }> }>;
      const kinds = branches.flatMap((b) => b.properties?.[tag]?.enum ?? (b.properties?.[tag]?.const !== undefined ? [b.properties[tag].const] : []));
      param = join(param, tag);
      return { param, message: `'${param}' must be one of: ${kinds.join(', ')}` };
    }
    default:
      return { param: param || null, message: `'${param || context}' ${first.message ?? 'is invalid'}` };
  }
}

/** Fastify's own refusals, each with a stable code of ours and a message that says the fix. */
const FRAMEWORK_ERRORS: Record<string, { status: number; code: string; message: string; param: string | null }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large', message: 'the body is larger than this route accepts; send a smaller one', param: 'body' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'this Content-Type is not accepted here; send application/json (dataset uploads: application/jsonl or text/csv)', param: 'Content-Type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length', message: 'the body does not match its Content-Length; send the length of the body', param: 'Content-Length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is empty; send a JSON object with Content-Type: application/json', param: 'body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'the body is not valid JSON; send a JSON object', param: 'body' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_path', message: 'the path is not a valid URL (a bad percent-encoding); encode it as RFC 3986 says', param: 'path' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'path_too_long', message: 'a path parameter is longer than 100 characters; ids are much shorter, check the path', param: 'path' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'invalid_request', message: 'the request could not be routed; check its path and headers', param: null },
};

/** A code for refusals that carry only an HTTP status. */
const STATUS_CODES: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  411: 'length_required',
  413: 'body_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  416: 'range_not_satisfiable',
  429: 'rate_limited',
  431: 'headers_too_large',
};

/** Our code for an HTTP status that comes without one. */
export const codeForStatus = (status: number): string => STATUS_CODES[status] ?? (status >= 500 ? 'internal_error' : 'invalid_request');

/** Messages for refusals of plugins that say only their status (the static files' 403 and 416). */
const STATUS_FALLBACK: Record<number, { message: string; param: string | null }> = {
  403: { message: 'this path cannot be served; check it (no hidden files, no encoded separators or NUL bytes)', param: 'path' },
  416: { message: 'the Range header asks for bytes the file does not have; send a range within its size, or no Range', param: 'Range' },
};

/**
 * Errors of the HTTP parser (before any request exists: bad request line, headers too large,
 * headers or whole request too slow): answered on the raw socket in the one error shape, then closed.
 */
export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  let status = 400;
  let code = 'invalid_request';
  let message = 'the request is not valid HTTP/1.1';
  let param: string | null = null;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    [status, code, message] = [408, 'request_timeout', 'the request took too long to arrive; send it faster or in smaller parts'];
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    [status, code, message, param] = [431, 'headers_too_large', 'the request headers are too large; send fewer or shorter headers', 'headers'];
  } else if (err.code === 'HPE_URI_TOO_LONG' || err.code === 'HPE_URL_TOO_LONG') {
    [status, code, message, param] = [414, 'uri_too_long', 'the URL is too long; send a shorter one', 'path'];
  }
  const body = JSON.stringify({ error: { code, message, param } });
  // A HEAD request's answer has no body: bytes after the headers would be read as a broken response.
  const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
  return `HTTP/1.1 ${status} ${HTTP_STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${head ? '' : body}`;
}

/** For Fastify's frameworkErrors (bad percent-encoding, a path parameter too long): the one shape. */
export function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const known = FRAMEWORK_ERRORS[err.code] ?? FRAMEWORK_ERRORS.FST_ERR_ASYNC_CONSTRAINT!;
  void reply.code(known.status).send({ error: { code: known.code, message: known.message, param: known.param } });
}

/** Sends an ApiError in the one shape, whatever error handler the route's scope has. */
export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  if (err.retryAfterS !== null) reply.header('retry-after', String(err.retryAfterS));
  return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message, param: err.param, ...err.fields } });
}

/** Socket error codes of a Redis that is down or out of reach (Node's own, on the error's `code`). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * A Redis that is away, known by type rather than by message: a request connection (fail-fast,
 * maxRetriesPerRequest 2) gives its queued commands up with ioredis' MaxRetriesPerRequestError once
 * its reconnects fail, and a connection that cannot open fails with the socket's error code.
 */
export function isStoreUnavailable(err: unknown): boolean {
  if (err instanceof MaxRetriesPerRequestError) return true;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && UNREACHABLE.has(code);
}

/** A write the primary Redis refused because no replica is in reach (min-replicas-to-write); nothing of it was stored. */
export { isNoReplicas };

/**
 * 503 no_primary: a write refused with READONLY past MAKAM_REDIS_NOREPLICAS_WAIT_MS. The node the
 * connection reached is a replica (a primary demoted in a failover), and reconnecting found no
 * other: the failover is still under way, or REDIS_URL names a node that is a replica for good.
 */
export function noPrimaryError(waitMs: number): ApiError {
  return new ApiError(
    503,
    'no_primary',
    `Redis refused to store this request's change: the node the API reached is a replica now (READONLY: a primary demoted in a failover), and no primary took the write within ${waitMs} ms (MAKAM_REDIS_NOREPLICAS_WAIT_MS). The refused write was not stored and nothing stored before is affected; retry after Retry-After (with the same Idempotency-Key a retry is safe). If it persists, the operator must check that REDIS_SENTINELS (or, without sentinels, REDIS_URL) leads to the primary`,
    null,
    Math.max(5, Math.ceil(waitMs / 1000)),
  );
}

/** 503 no_replicas: what happened (a refused write), why, and what to do. */
export function noReplicasError(waitMs: number): ApiError {
  return new ApiError(
    503,
    'no_replicas',
    `Redis refused to store this request's change: its primary has no replica in reach to take the write (min-replicas-to-write), and none came back within ${waitMs} ms (MAKAM_REDIS_NOREPLICAS_WAIT_MS). The refused write was not stored and nothing stored before is affected; retry after Retry-After (with the same Idempotency-Key a retry is safe). If it persists, the operator must bring a Redis replica back`,
    null,
    Math.max(5, Math.ceil(waitMs / 1000)),
  );
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError, request, reply) => {
    if (err instanceof ApiError) return sendApiError(reply, err);
    if ((err as FastifyError).validation) {
      const { message, param } = describeValidation(err as FastifyError);
      return reply.code(400).send({ error: { code: 'invalid_request', message, param } });
    }
    const status = (err as FastifyError).statusCode ?? 500;
    if (status < 500) {
      const known = FRAMEWORK_ERRORS[(err as FastifyError).code ?? ''];
      if (known) return reply.code(known.status).send({ error: { code: known.code, message: known.message, param: known.param } });
      // JSON.parse's SyntaxError and errors of plugins (static files) carry a status but no code of ours.
      const fallback = STATUS_FALLBACK[status];
      // A bare status text ("Forbidden") says no fix: use ours.
      const message = fallback && err.message === HTTP_STATUS_TEXT[status] ? fallback.message : err.message;
      return reply.code(status).send({ error: { code: STATUS_CODES[status] ?? 'invalid_request', message, param: fallback?.param ?? null } });
    }
    if (isNoReplicas(err)) {
      request.log.warn({ err: err.message }, 'redis refused a write: no replica in reach');
      return sendApiError(reply, noReplicasError(app.config?.MAKAM_REDIS_NOREPLICAS_WAIT_MS ?? 0));
    }
    if (isReadOnly(err)) {
      request.log.warn({ err: err.message }, 'redis refused a write: the node is a replica');
      return sendApiError(reply, noPrimaryError(app.config?.MAKAM_REDIS_NOREPLICAS_WAIT_MS ?? 0));
    }
    if (isStoreUnavailable(err)) {
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
