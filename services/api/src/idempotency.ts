// Idempotency-Key handling for the create routes.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';
import { awaitReplicas, type Made } from './replication.ts';

/** A create route's answer. */
export interface Written {
  status: number;
  body: unknown;
}

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
 * With MAKAM_REDIS_WAIT_REPLICAS, no answer goes out before the replicas have it (replication.ts).
 */
export async function withIdempotency(
  app: FastifyInstance,
  tenant: string,
  scope: 'jobs' | 'datasets',
  key: string | null,
  fingerprint: string,
  produce: () => Promise<Written>,
): Promise<{ status: number; body: unknown }> {
  if (!key) {
    const answer = await produce();
    await awaitReplicas(app.config, app.replicaWaits, made(scope, answer.body));
    return answer;
  }
  const claim = await app.idempotency.claim(tenant, scope, key, fingerprint);
  if (claim.kind === 'replay') {
    // The first try may have answered 503 not_replicated: replay only once the replicas have it.
    await awaitReplicas(app.config, app.replicaWaits, made(scope, claim.answer.body));
    return { status: claim.answer.status, body: claim.answer.body };
  }
  if (claim.kind === 'conflict') throw new ApiError(409, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request; use a new key for a new request', 'Idempotency-Key');
  if (claim.kind === 'in_progress') throw new ApiError(409, 'idempotency_key_in_progress', 'a request with this Idempotency-Key is still being processed; retry shortly', 'Idempotency-Key');
  let answer: { status: number; body: unknown };
  try {
    answer = await produce();
  } catch (err) {
    await app.idempotency.release(tenant, scope, key, claim.claim);
    throw err;
  }
  // Not released if this fails: what produce made stays, and a retry must replay it, not make it again.
  await app.idempotency.complete(tenant, scope, key, { fingerprint, ...answer });
  // One WAIT after the stored answer covers it and every write before it (the job, its queueing,
  // its quota place). A 503 here keeps the answer, so a retry replays it: nothing made twice.
  await awaitReplicas(app.config, app.replicaWaits, made(scope, answer.body));
  return answer;
}

/** The job or dataset a create answer holds, for a 503 not_replicated to name. */
function made(scope: 'jobs' | 'datasets', body: unknown): Made | undefined {
  const id = (body as { id?: unknown } | null)?.id;
  if (typeof id !== 'string') return undefined;
  return scope === 'jobs' ? { field: 'job_id', id, path: `/v1/jobs/${id}` } : { field: 'dataset_id', id, path: `/v1/datasets/${id}` };
}
