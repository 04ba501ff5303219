// Asking a job to stop, as the API does for a user and the tune coordinator does for trials: a
// queued job is cancelled at once (a dispatcher skips a record that is no longer queued), a
// running one moves to cancelling and its dispatcher hears it on the cancel channel.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobStore } from './job-store.ts';
import type { RedisKeys } from './keys.ts';

export async function requestCancel(jobs: JobStore, redis: Redis, keys: RedisKeys, queue: Queue | undefined, id: string, queuedMessage = 'cancelled while queued'): Promise<void> {
  const now = new Date().toISOString();
  const queued = await jobs.transition(id, 'cancelled', { cancel_requested: true, finished_at: now, error: null }, queuedMessage, ['queued']);
  if (queued.ok) {
    await queue?.remove(id).catch(() => 0);
    return;
  }
  const running = await jobs.transition(id, 'cancelling', { cancel_requested: true }, 'cancel requested', ['running']);
  if (running.ok) await redis.publish(keys.cancelChannel, id);
}
