// Opt-in: before the API acknowledges a write, Redis WAIT until that many replicas have it
// (MAKAM_REDIS_WAIT_REPLICAS, MAKAM_REDIS_WAIT_MS). Replication is asynchronous, so without it a
// write the primary acknowledged just before it died may be missing from the replica promoted.
import { ApiError } from './errors.ts';

/** A connection that can WAIT (ioredis): WAIT covers the writes this connection sent before it. */
export interface WaitConnection {
  wait(numreplicas: number, timeout: number): Promise<number>;
}

export interface ReplicationSettings {
  MAKAM_REDIS_WAIT_REPLICAS: number;
  MAKAM_REDIS_WAIT_MS: number;
}

/** What a write made, for a 503 not_replicated to name: the error field and the path to poll. */
export interface Made {
  field: 'job_id' | 'dataset_id';
  id: string;
  path: string;
}

/** 503 not_replicated: the primary has the write, fewer replicas than asked for acknowledged it in time. */
export class NotReplicatedError extends ApiError {
  constructor(acked: number, settings: ReplicationSettings, made?: Made) {
    // Without an Idempotency-Key a repeat makes a second one: the answer names what the first made.
    const lookUp = made
      ? `poll GET ${made.path} rather than repeating the request (it answers 404 only if a failover lost the change: then repeat it)`
      : 'look the change up before you repeat it';
    super(
      503,
      'not_replicated',
      `the change was made on the primary Redis${made ? ` (${made.field} ${made.id})` : ''}, but only ${acked} of the ${settings.MAKAM_REDIS_WAIT_REPLICAS} replicas required (MAKAM_REDIS_WAIT_REPLICAS) confirmed it within ${settings.MAKAM_REDIS_WAIT_MS} ms, so it may or may not persist through a failover; retrying with the same Idempotency-Key is safe (it gives the first answer once replicated, and creates nothing twice); without a key, ${lookUp}`,
      null,
      Math.max(1, Math.ceil(settings.MAKAM_REDIS_WAIT_MS / 1000)),
      made ? { [made.field]: made.id } : {},
    );
  }
}

export const waitsForReplicas = (settings: ReplicationSettings): boolean => settings.MAKAM_REDIS_WAIT_REPLICAS > 0;

/**
 * WAITs on `conn`, which must be the connection that sent the request's last write (WAIT counts
 * replicas up to that connection's last write; the replication stream is one ordered log, so that
 * covers every earlier write on any connection). Off (0 replicas): no round trip. `made`: what the
 * write created, named in the 503.
 */
export async function awaitReplicas(settings: ReplicationSettings, conn: WaitConnection | Promise<WaitConnection>, made?: Made): Promise<void> {
  if (!waitsForReplicas(settings)) return;
  const acked = await (await conn).wait(settings.MAKAM_REDIS_WAIT_REPLICAS, settings.MAKAM_REDIS_WAIT_MS);
  if (acked < settings.MAKAM_REDIS_WAIT_REPLICAS) throw new NotReplicatedError(acked, settings, made);
}
