// Webhook delivery. Who sends, and why here:
// - Jobs end in two kinds of process: a dispatcher (succeeded, failed, cancelled while running)
//   and the API (cancelled while queued, an enqueue that failed). Every one of those goes through
//   JobStore.transition, which appends the job to one Redis stream, `<prefix>:jobs:finished`.
//   Notifying from that stream catches all of them, in one place, and survives restarts: a
//   consumer group hands each entry to one API process and keeps it pending until it is fanned
//   out (entries of a process that died are claimed by another after a minute).
// - The API processes send, not the dispatchers: dispatchers sit next to GPU workers on a private
//   network and need no way out to the internet, while the API is the public, horizontally scaled
//   front that already owns the webhook registry. MAKAM_WEBHOOK_DELIVERY=false leaves a replica out.
// - Each (event, webhook) pair is a BullMQ job with a deterministic id, so fanning an entry out
//   twice enqueues nothing twice; BullMQ retries failed attempts with exponential backoff, and
//   every attempt is written to the webhook's delivery log.
// - A delivery job carries ids, never the job's record (one copy per webhook made Redis grow with
//   every record): the body is built from the record when it is sent, bounded, and a terminal
//   record does not change, so every attempt sends the same bytes.
import { hostname } from 'node:os';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { FastifyBaseLogger as Logger } from 'fastify';
import ipaddr from 'ipaddr.js';
import { fetch, type Dispatcher } from 'undici';
import { isPublicAddress, publicOnlyAgent } from './address-policy.ts';
import { boundJson, MAX_JOB_RECORD_BYTES, type JobRecord, type JobStore } from '@makam/shared/job-store';
import { createRedis, type Redis, type RedisSettings } from '@makam/shared/redis';
import { signBody, SIGNATURE_HEADER, TIMESTAMP_HEADER, type WebhookEventType, type WebhookStore } from './webhook-store.ts';
import type { RedisKeys } from '@makam/shared/keys';

export const WEBHOOK_QUEUE = 'webhook-deliveries';
const GROUP = 'webhooks';
const CLAIM_IDLE_MS = 60_000;
const BLOCK_MS = 5_000;
/** The largest body a delivery sends: the job's record (itself bounded) and the event around it. */
export const MAX_WEBHOOK_BODY_BYTES = MAX_JOB_RECORD_BYTES + 4096;
/** The largest delivery job's data in the queue (ids and the event's time, no record). */
export const MAX_DELIVERY_JOB_DATA_BYTES = 1024;

export interface DeliveryData {
  webhookId: string;
  eventId: string;
  eventType: WebhookEventType;
  jobId: string;
  /** When the job ended (the event's created_at). */
  createdAt: string;
}

/** The event a delivery POSTs; a job removed meanwhile (retention) is sent as its id and status. */
export function deliveryBody(data: DeliveryData, job: JobRecord | null): string {
  const event = (j: unknown) => JSON.stringify({ id: data.eventId, object: 'event', type: data.eventType, created_at: data.createdAt, data: { job: j } });
  const body = event(job ?? { id: data.jobId, object: 'job', status: data.eventType.replace(/^job\./, '') });
  return Buffer.byteLength(body) <= MAX_WEBHOOK_BODY_BYTES ? body : event(boundJson(job, MAX_WEBHOOK_BODY_BYTES - 1024));
}

export interface DeliveryOptions {
  /** Where Redis is: the URL and its TLS files. */
  redisSettings: RedisSettings;
  queuePrefix: string;
  keys: RedisKeys;
  redis: Redis;
  jobs: JobStore;
  webhooks: WebhookStore;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
  /** Deliver to loopback and private addresses too (a receiver on the same private network). */
  allowPrivate: boolean;
  log: Logger;
  /** Called after each attempt with its outcome. */
  onAttempt?: (outcome: 'delivered' | 'retrying' | 'gave_up') => void;
}

export class WebhookDelivery {
  private readonly o: DeliveryOptions;
  private readonly consumer = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private queueConn: Redis | null = null;
  private workerConn: Redis | null = null;
  private readConn: Redis | null = null;
  private queue: Queue<DeliveryData> | null = null;
  private worker: Worker<DeliveryData> | null = null;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly agent: Dispatcher | undefined;

  constructor(options: DeliveryOptions) {
    this.o = options;
    this.agent = options.allowPrivate ? undefined : publicOnlyAgent();
  }

  /** The queue of deliveries (for the admin queue board). */
  static queue(redisConn: Redis, queuePrefix: string): Queue<DeliveryData> {
    return new Queue<DeliveryData>(WEBHOOK_QUEUE, { connection: redisConn, prefix: queuePrefix });
  }

  async start(): Promise<void> {
    const { redisSettings, queuePrefix } = this.o;
    this.queueConn = createRedis(redisSettings);
    this.queueConn.on('error', () => {});
    this.queue = WebhookDelivery.queue(this.queueConn, queuePrefix);
    this.workerConn = createRedis(redisSettings, { blocking: true });
    this.workerConn.on('error', () => {});
    this.worker = new Worker<DeliveryData>(WEBHOOK_QUEUE, (job) => this.attempt(job), {
      connection: this.workerConn,
      prefix: queuePrefix,
      concurrency: 8,
    });
    this.worker.on('error', (err) => this.o.log.warn({ err: err.message }, 'webhook worker error'));
    this.readConn = createRedis(redisSettings, { blocking: true });
    this.readConn.on('error', () => {});
    try {
      // From the stream's start: entries older than a webhook are skipped by time, not lost.
      await this.o.redis.xgroup('CREATE', this.o.keys.jobsFinished, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
    this.loopDone = this.loop();
  }

  private async loop(): Promise<void> {
    const conn = this.readConn!;
    const key = this.o.keys.jobsFinished;
    // First what this consumer left pending, then entries of dead consumers, then new ones.
    let own = true;
    while (!this.stopped) {
      try {
        let entries: Array<[string, string[]]> = [];
        if (own) {
          const res = (await conn.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', 100, 'STREAMS', key, '0')) as Array<[string, Array<[string, string[]]>]> | null;
          entries = res?.[0]?.[1] ?? [];
          own = entries.length > 0;
        }
        if (!own) {
          const claimed = (await conn.xautoclaim(key, GROUP, this.consumer, CLAIM_IDLE_MS, '0-0', 'COUNT', 100)) as [string, Array<[string, string[]]>];
          entries = claimed[1] ?? [];
          if (entries.length === 0) {
            const res = (await conn.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', 100, 'BLOCK', BLOCK_MS, 'STREAMS', key, '>')) as Array<[string, Array<[string, string[]]>]> | null;
            entries = res?.[0]?.[1] ?? [];
          }
        }
        for (const [id, fields] of entries) {
          if (this.stopped) return;
          const f: Record<string, string> = {};
          for (let i = 0; i + 1 < (fields?.length ?? 0); i += 2) f[fields[i]!] = fields[i + 1]!;
          if (f.job) await this.fanOut(id, f.job, f.status ?? '');
          await this.o.redis.xack(key, GROUP, id);
        }
      } catch (err) {
        if (this.stopped) return;
        own = true; // what was read stays pending: read it again
        this.o.log.warn({ err: (err as Error).message }, 'webhook notifier failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Enqueues one delivery per webhook of the job's tenant that wants this event. */
  private async fanOut(entryId: string, jobId: string, status: string): Promise<void> {
    const job = await this.o.jobs.get(jobId);
    if (!job) return;
    const eventType = `job.${status}` as WebhookEventType;
    const endedAt = Number(entryId.split('-')[0]);
    const hooks = (await this.o.webhooks.list(job.tenant)).filter((h) => h.events.includes(eventType) && Date.parse(h.created_at) <= endedAt);
    if (hooks.length === 0) return;
    const eventId = `evt_${entryId.replace('-', '_')}`;
    const createdAt = new Date(endedAt).toISOString();
    await this.queue!.addBulk(
      hooks.map((h) => ({
        name: 'deliver',
        data: { webhookId: h.id, eventId, eventType, jobId, createdAt },
        opts: {
          jobId: `${eventId}-${h.id}`,
          attempts: this.o.attempts,
          backoff: { type: 'exponential', delay: this.o.backoffMs },
          removeOnComplete: { age: 24 * 3600, count: 10_000 },
          removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
        },
      })),
    );
    this.o.log.info({ jobId, eventType, webhooks: hooks.length }, 'webhook deliveries queued');
  }

  /** One POST; throws to have BullMQ retry it. */
  private async attempt(job: Job<DeliveryData>): Promise<string> {
    const { webhookId, eventId, eventType, jobId } = job.data;
    const [hook, secret] = await Promise.all([this.o.webhooks.get(webhookId), this.o.webhooks.secret(webhookId)]);
    if (!hook || !secret) return 'webhook_deleted';
    // A delivery queued by an older version carries its body.
    const body = (job.data as DeliveryData & { body?: string }).body ?? deliveryBody(job.data, await this.o.jobs.get(jobId));
    const attempt = job.attemptsMade + 1;
    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      // A literal address is never looked up, so the agent cannot screen it: screen it here.
      const host = new URL(hook.url).hostname.replace(/^\[|\]$/g, '');
      if (this.agent && ipaddr.isValid(host) && !isPublicAddress(host)) throw Object.assign(new Error('refused'), { cause: { code: 'EADDRNOTALLOWED' } });
      const res = await fetch(hook.url, {
        method: 'POST',
        redirect: 'manual',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.o.timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'makam-webhooks/1',
          [SIGNATURE_HEADER]: signBody(secret, body),
          [TIMESTAMP_HEADER]: String(Math.floor(started / 1000)),
          'x-makam-event': eventType,
          'x-makam-event-id': eventId,
          'x-makam-delivery-attempt': String(attempt),
        },
        body,
      });
      status = res.status;
      await res.body?.cancel().catch(() => {});
      if (status < 200 || status >= 300) error = `the receiver answered ${status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      error = e.name === 'TimeoutError' ? `no answer within ${this.o.timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
      if (error === 'EADDRNOTALLOWED') error = 'EADDRNOTALLOWED: the receiver is on a private or reserved network; webhooks go to public addresses only';
    }
    const ok = error === null;
    // 410 Gone: the receiver says it will never want this again; a private address will not change.
    const never = status === 410 || error?.startsWith('EADDRNOTALLOWED') === true;
    const final = ok || never || attempt >= (job.opts.attempts ?? 1);
    await this.o.webhooks.logAttempt(webhookId, {
      object: 'webhook_delivery',
      event_id: eventId,
      event_type: eventType,
      job_id: jobId,
      attempt,
      response_status: status,
      error,
      ok,
      will_retry: !final,
      duration_ms: Date.now() - started,
      created_at: new Date(started).toISOString(),
    }, this.queueConn!);
    this.o.onAttempt?.(ok ? 'delivered' : final ? 'gave_up' : 'retrying');
    if (ok) return 'delivered';
    if (never) throw new UnrecoverableError(error!);
    throw new Error(error!);
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.readConn?.disconnect();
    await this.loopDone;
    await this.worker?.close();
    await this.queue?.close();
    this.workerConn?.disconnect();
    this.queueConn?.disconnect();
  }
}
