// The API listening on a free port against a real Redis, with a prefix of the test's own, an API
// key for tenant `acme` and one for tenant `other`; and job records written straight to Redis
// (no worker: these tests drive the records and event streams as a dispatcher would).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { JobStore, queuedJob, type FinetuneJob } from '@makam/shared/job-store';
import { createRedis, type Redis } from '@makam/shared/redis';
import { newJobId } from '@makam/shared/ids';
import { redisKeys } from '@makam/shared/keys';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from '../support/keys.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

export const ADMIN_KEY = 'admin-key-for-tests-0123456789abcdef';

export interface OpsApp {
  app: FastifyInstance;
  url: string;
  redis: TestRedis;
  prefix: string;
  /** A plain connection for the test's own reads and writes. */
  conn: Redis;
  jobs: JobStore;
  key: string;
  otherKey: string;
  /** fetch against the API with the `acme` key. */
  api(pathname: string, init?: RequestInit): Promise<Response>;
  job(fields?: Partial<FinetuneJob>): Promise<FinetuneJob>;
  close(): Promise<void>;
}

export async function startOpsApp(env: Record<string, string> = {}): Promise<OpsApp> {
  const redis = await startRedis();
  const prefix = uniquePrefix();
  const config = loadApiConfig({
    REDIS_URL: redis.url,
    MAKAM_REDIS_PREFIX: prefix,
    MAKAM_QUEUE_PREFIX: `${prefix}-q`,
    MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-ops-')),
    MAKAM_RESOURCE_CLASSES: 'cpu,gpu-4g',
    MAKAM_LOG_LEVEL: 'warn',
    MAKAM_ADMIN_KEY: ADMIN_KEY,
    MAKAM_SSE_HEARTBEAT_MS: '200',
    MAKAM_WEBHOOK_BACKOFF_MS: '100',
    ...env,
  });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  const conn = createRedis(redis.url);
  const jobs = new JobStore(conn, redisKeys(prefix));
  const key = await createKey(redis.url, prefix, 'acme');
  const otherKey = await createKey(redis.url, prefix, 'other');
  return {
    app,
    url,
    redis,
    prefix,
    conn,
    jobs,
    key,
    otherKey,
    api: (pathname, init) => fetch(`${url}${pathname}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init?.headers as Record<string, string> | undefined) } }),
    job: async (fields = {}) => {
      const record = queuedJob({
        id: newJobId(),
        tenant: 'acme',
        kind: 'finetune',
        model: { family: 'encoder', name: 'dbmdz/bert-base-turkish-cased' },
        dataset: 'ds_01jd0000000000000000000000',
        validation_dataset: null,
        test_dataset: null,
        hyperparameters: { epochs: 3 },
        resource_class: 'cpu',
        estimate: null,
        ...fields,
      });
      await jobs.create(record);
      return record;
    },
    close: async () => {
      await app.close();
      conn.disconnect();
      await redis.stop();
    },
  };
}

/** Reads a server-sent event stream: messages as they arrive, comments counted. */
export class SseReader {
  readonly messages: Array<{ id?: string; event?: string; data: string }> = [];
  comments = 0;
  done = false;
  status = 0;
  private readonly controller = new AbortController();
  private waiters: Array<() => void> = [];
  readonly finished: Promise<void>;

  constructor(url: string, headers: Record<string, string>) {
    this.finished = this.read(url, headers);
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async read(url: string, headers: Record<string, string>): Promise<void> {
    try {
      const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: this.controller.signal });
      this.status = res.status;
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const msg: { id?: string; event?: string; data: string } = { data: '' };
          let comment = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comment = true;
            else if (line.startsWith('id: ')) msg.id = line.slice(4);
            else if (line.startsWith('event: ')) msg.event = line.slice(7);
            else if (line.startsWith('data: ')) msg.data += line.slice(6);
          }
          if (comment) this.comments += 1;
          else if (msg.event || msg.data) this.messages.push(msg);
          this.notify();
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    } finally {
      this.done = true;
      this.notify();
    }
  }

  /** Resolves once `pred` holds, failing after `ms`. */
  async until(pred: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out; messages: ${JSON.stringify(this.messages.map((m) => m.event))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  close(): void {
    this.controller.abort();
  }
}
