import { Type } from 'typebox';
import { SharedConfig, loadConfig } from '@makam/shared/config';
import { OpsConfigProperties } from './ops-config.ts';

/** The API's settings (environment variables), with defaults. */
export const ApiConfigProperties = {
  ...SharedConfig,
  /** Address to listen on. */
  MAKAM_API_HOST: Type.String({ default: '127.0.0.1' }),
  /** Port to listen on; 0 picks a free one. */
  MAKAM_API_PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  /** The largest dataset upload, in bytes. */
  MAKAM_MAX_DATASET_BYTES: Type.Integer({ default: 256 * 1024 * 1024, minimum: 1024 }),
  /** The longest text of a dataset row, and the longest JSON line (or CSV field) as sent, in bytes. */
  MAKAM_MAX_TEXT_BYTES: Type.Integer({ default: 1024 * 1024, minimum: 64 }),
  /** The longest label, in characters (every label travels in every job record, event and report). */
  MAKAM_MAX_LABEL_CHARS: Type.Integer({ default: 100, minimum: 1, maximum: 10_000 }),
  /** The most distinct labels a dataset may have. */
  MAKAM_MAX_LABELS: Type.Integer({ default: 200, minimum: 2, maximum: 10_000 }),
  /** The operator's key for /v1/admin (key management); unset turns admin routes off. */
  MAKAM_ADMIN_KEY: Type.Optional(Type.String({ minLength: 16 })),
  /** Requests per minute per tenant, all its API keys together. */
  MAKAM_RATE_LIMIT_PER_MINUTE: Type.Integer({ default: 600, minimum: 1 }),
  /** Requests per minute per client address (public routes excepted). */
  MAKAM_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: Type.Integer({ default: 1200, minimum: 1 }),
  /** Failed authentications per minute per client address; past it the address gets 429. */
  MAKAM_AUTH_FAILURES_PER_MINUTE: Type.Integer({ default: 20, minimum: 1 }),
  /** Proxies whose X-Forwarded-For is believed: empty (none), 'true', a hop count, or addresses/CIDRs, comma-separated. */
  MAKAM_TRUST_PROXY: Type.String({ default: '' }),
  // Slow clients: each of these closes a connection that holds the server without progress.
  /** Time to receive a request's headers, in milliseconds. */
  MAKAM_HEADERS_TIMEOUT_MS: Type.Integer({ default: 20_000, minimum: 100 }),
  /** Time to receive a whole request, body included, in milliseconds (0: no limit). */
  MAKAM_REQUEST_TIMEOUT_MS: Type.Integer({ default: 3_600_000, minimum: 0 }),
  /** A request body slower than this many bytes a second over a window is cut with 408 (0: off). */
  MAKAM_MIN_BODY_BYTES_PER_S: Type.Integer({ default: 1024, minimum: 0 }),
  /** The window over which the body rate is measured, in milliseconds. */
  MAKAM_BODY_RATE_WINDOW_MS: Type.Integer({ default: 15_000, minimum: 100 }),
  /** A socket with no traffic either way for this long is closed, in milliseconds (0: never). */
  MAKAM_SOCKET_IDLE_TIMEOUT_MS: Type.Integer({ default: 120_000, minimum: 0 }),
  /** How long an idle keep-alive connection stays open between requests, in milliseconds. */
  MAKAM_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ default: 5_000, minimum: 1 }),
  /** How deep a JSON body may nest (objects and arrays); deeper answers 400. */
  MAKAM_MAX_JSON_DEPTH: Type.Integer({ default: 64, minimum: 2, maximum: 1000 }),
  /** Queued and running jobs a tenant may have at once. */
  MAKAM_TENANT_MAX_ACTIVE_JOBS: Type.Integer({ default: 20, minimum: 1 }),
  /** Dataset bytes a tenant may store. */
  MAKAM_TENANT_MAX_STORED_BYTES: Type.Integer({ default: 10 * 1024 ** 3, minimum: 1024 }),
  /** Attempts per job, the first included; retries are for worker faults only. */
  MAKAM_JOB_ATTEMPTS: Type.Integer({ default: 3, minimum: 1, maximum: 20 }),
  // Overload (@fastify/under-pressure): above any of these, requests answer 503 early (0 turns a check off).
  /** Mean event-loop delay over a sample, in milliseconds. */
  MAKAM_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 2000, minimum: 0 }),
  /** Event-loop utilization over a sample, from 0 to 1. */
  MAKAM_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ default: 0, minimum: 0, maximum: 1 }),
  /** V8 heap in use, in bytes. */
  MAKAM_MAX_HEAP_USED_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  /** Resident set size, in bytes. */
  MAKAM_MAX_RSS_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  /** How often the figures above are sampled, in milliseconds. */
  MAKAM_PRESSURE_SAMPLE_MS: Type.Integer({ default: 1000, minimum: 10, maximum: 60_000 }),
  /** A successful GET or HEAD is counted into a 'requests summary' line this often rather than logged alone (the first of each route, API key and status in a window still is); 0: a line each. */
  MAKAM_READ_LOG_SUMMARY_MS: Type.Integer({ default: 10_000, minimum: 0, maximum: 3_600_000 }),
  /** The Retry-After of an overload 503, in seconds. */
  MAKAM_PRESSURE_RETRY_AFTER_S: Type.Integer({ default: 5, minimum: 1, maximum: 3600 }),
  /** Directories on the workers that model.name may name a path under, colon-separated; empty: hub ids only. */
  MAKAM_MODEL_ROOTS: Type.String({ default: '', pattern: '^(/[^:]*(:/[^:]*)*)?$' }),
  /** Replicas that must have a write (Redis WAIT) before the API acknowledges it: job submits, dataset uploads, cancels; 0: off (no extra round trip). */
  MAKAM_REDIS_WAIT_REPLICAS: Type.Integer({ default: 0, minimum: 0, maximum: 100 }),
  /** How long that WAIT may take, in milliseconds; past it the request answers 503 not_replicated. */
  MAKAM_REDIS_WAIT_MS: Type.Integer({ default: 1000, minimum: 1, maximum: 60_000 }),
  /** How long a request's write that Redis refuses with NOREPLICAS (min-replicas-to-write: no replica in reach) is sent again before the request answers 503 no_replicas, in milliseconds; 0: at once. */
  MAKAM_REDIS_NOREPLICAS_WAIT_MS: Type.Integer({ default: 3000, minimum: 0, maximum: 60_000 }),
  ...OpsConfigProperties,
};

export type ApiConfig = ReturnType<typeof loadApiConfig>;
export const loadApiConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(ApiConfigProperties, env);
