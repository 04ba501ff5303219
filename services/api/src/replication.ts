// Opt-in: before the API acknowledges a write, Redis WAIT until that many replicas have it
// (MAKAM_REDIS_WAIT_REPLICAS, MAKAM_REDIS_WAIT_MS). Replication is asynchronous, so without it a
// write the primary acknowledged just before it died may be missing from the replica promoted.
import type { Redis } from 'ioredis';
import { ApiError } from './errors.ts';

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
 * WAIT as a group commit, on a connection of its own. WAIT blocks the connection it is sent on and
 * counts replicas up to that connection's last write; so each round first writes a marker there and
 * then WAITs (one round trip): the replication stream is one ordered log, and the marker comes after
 * every write already acknowledged to anyone, on any connection or API process. Callers that arrive
 * while a round is out join the next one, so a lagging replica holds up only the requests that wait
 * for it, never another request's reads or writes, and one WAIT serves as many writes as arrive.
 */
export class ReplicaWaits {
  private readonly conn: Redis;
  private readonly markerKey: string;
  private readonly settings: ReplicationSettings;
  /** The round that has not sent its marker yet: callers join it. */
  private pending: Promise<number> | null = null;
  /** The round whose marker and WAIT are out. */
  private inFlight: Promise<number> | null = null;

  constructor(conn: Redis, markerKey: string, settings: ReplicationSettings) {
    this.conn = conn;
    this.markerKey = markerKey;
    this.settings = settings;
  }

  /** How many replicas have every write acknowledged before this call (at most the setting). */
  acked(): Promise<number> {
    if (this.pending) return this.pending;
    const previous = this.inFlight;
    let round!: Promise<number>; // read inside the round, after its first await
    round = (async (): Promise<number> => {
      await previous?.catch(() => undefined);
      // The marker goes out now: a write acknowledged from here on needs the next round.
      this.pending = null;
      this.inFlight = round;
      try {
        const replies = await this.conn.pipeline().set(this.markerKey, Date.now()).wait(this.settings.MAKAM_REDIS_WAIT_REPLICAS, this.settings.MAKAM_REDIS_WAIT_MS).exec();
        if (!replies) throw new Error('WAIT got no reply');
        // A refused marker (NOREPLICAS, say) leaves the WAIT counting up to an older write: no answer.
        for (const [err] of replies) if (err) throw err;
        return Number(replies.at(-1)![1]);
      } finally {
        if (this.inFlight === round) this.inFlight = null;
      }
    })();
    this.pending = round;
    return round;
  }
}

/**
 * Waits until the replicas have every write this request was answered for (ReplicaWaits), or
 * throws 503 not_replicated. Off (0 replicas): no round trip. `made`: what the write created,
 * named in the 503.
 */
export async function awaitReplicas(settings: ReplicationSettings, waits: ReplicaWaits | null, made?: Made): Promise<void> {
  if (!waitsForReplicas(settings) || !waits) return;
  const acked = await waits.acked();
  if (acked < settings.MAKAM_REDIS_WAIT_REPLICAS) throw new NotReplicatedError(acked, settings, made);
}
