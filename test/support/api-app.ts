// The API built in-process (called with Fastify's inject) against a real Redis, with a key prefix of
// the test's own and an API key of one tenant: the setup the route tests share.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from '../../services/api/src/app.ts';
import { loadApiConfig } from '../../services/api/src/config.ts';
import { createKey } from './keys.ts';
import { startRedis, uniquePrefix, type TestRedis } from './redis.ts';
import { ROOT } from './stack.ts';

export interface InjectApi {
  app: FastifyInstance;
  redis: TestRedis;
  prefix: string;
  /** The tenant's API key. */
  key: string;
  /** inject with the tenant's key. */
  call(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** Uploads examples/data/lyrics-sample.jsonl (its first `rows` lines when given): the dataset's record. */
  upload(opts?: { rows?: number; name?: string }): Promise<{ id: string; labels: string[] }>;
  close(): Promise<void>;
}

export async function startInjectApi(opts: { tenant?: string; env?: Record<string, string>; logger?: Logger } = {}): Promise<InjectApi> {
  const redis = await startRedis();
  const prefix = uniquePrefix();
  let app: FastifyInstance;
  let key: string;
  try {
    const config = loadApiConfig({
      REDIS_URL: redis.url,
      MAKAM_REDIS_PREFIX: prefix,
      MAKAM_QUEUE_PREFIX: `${prefix}-q`,
      MAKAM_STORE_DIR: await mkdtemp(path.join(tmpdir(), 'makam-api-')),
      ...opts.env,
    });
    app = await buildApp(config, opts.logger);
    key = await createKey(redis.url, prefix, opts.tenant ?? 'acme');
  } catch (err) {
    await redis.stop(); // the test's after() has nothing to close
    throw err;
  }
  const call = (o: InjectOptions) => app.inject({ ...o, headers: { authorization: `Bearer ${key}`, ...o.headers } });
  const upload = async ({ rows, name }: { rows?: number; name?: string } = {}) => {
    const sample = await readFile(path.join(ROOT, 'examples/data/lyrics-sample.jsonl'), 'utf8');
    const payload = rows === undefined ? sample : sample.split('\n').slice(0, rows).join('\n');
    const res = await call({ method: 'POST', url: `/v1/datasets${name ? `?name=${name}` : ''}`, headers: { 'content-type': 'application/jsonl' }, payload });
    if (res.statusCode !== 201) throw new Error(`the sample upload answered ${res.statusCode}: ${res.body}`);
    return res.json() as { id: string; labels: string[] };
  };
  return {
    app,
    redis,
    prefix,
    key,
    call,
    upload,
    close: async () => {
      await app.close();
      await redis.stop();
    },
  };
}
