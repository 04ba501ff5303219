// Idempotency-Key handling for the create routes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';

export function idempotencyKey(request: FastifyRequest): string | null {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return null;
  if (typeof key !== 'string' || key.length < 1 || key.length > 255 || !/^[\x21-\x7e]+$/.test(key)) {
    throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1 to 255 printable ASCII characters', 'Idempotency-Key');
  }
  return key;
}

/**
 * Runs `produce` once per (tenant, scope, key): a repeat with the same fingerprint gets the stored
 * answer, another fingerprint 409. A refusal frees the key so a corrected request can reuse it.
 */
export async function withIdempotency(
  app: FastifyInstance,
  tenant: string,
  scope: string,
  key: string | null,
  fingerprint: string,
  produce: () => Promise<{ status: number; body: unknown }>,
): Promise<{ status: number; body: unknown }> {
  if (!key) return produce();
  const claim = await app.idempotency.claim(tenant, scope, key, fingerprint);
  if (claim.kind === 'replay') return { status: claim.answer.status, body: claim.answer.body };
  if (claim.kind === 'conflict') throw new ApiError(409, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request; use a new key for a new request', 'Idempotency-Key');
  if (claim.kind === 'in_progress') throw new ApiError(409, 'idempotency_key_in_progress', 'a request with this Idempotency-Key is still being processed; retry shortly', 'Idempotency-Key');
  try {
    const answer = await produce();
    await app.idempotency.complete(tenant, scope, key, { fingerprint, ...answer });
    return answer;
  } catch (err) {
    await app.idempotency.release(tenant, scope, key);
    throw err;
  }
}
