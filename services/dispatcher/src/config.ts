import { Type } from 'typebox';
import { SharedConfig, loadConfig } from '@makam/shared/config';

/** A dispatcher's settings (environment variables), with defaults. */
export const DispatcherConfigProperties = {
  ...SharedConfig,
  /** The resource class whose queue this dispatcher takes jobs from. */
  MAKAM_CLASS: Type.String({ default: 'cpu', pattern: '^[a-z0-9-]+$' }),
  /** The gRPC addresses (host:port) of the Python workers it drives, comma-separated; one job each at a time. */
  MAKAM_WORKERS: Type.String({ default: '127.0.0.1:50051', pattern: '^[^,\\s]+(,[^,\\s]+)*$' }),
  /** How often a running job's record is checked for a cancel, besides the pub/sub message. */
  MAKAM_CANCEL_POLL_MS: Type.Integer({ default: 1000, minimum: 100 }),
  /** PEM CA of the workers' certificates; set, the dispatcher speaks TLS to its workers. */
  MAKAM_GRPC_TLS_CA: Type.Optional(Type.String({ minLength: 1 })),
  /** PEM client certificate and key for mutual TLS. */
  MAKAM_GRPC_TLS_CERT: Type.Optional(Type.String({ minLength: 1 })),
  MAKAM_GRPC_TLS_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** The name to check the workers' certificates against, when it is not the address's host. */
  MAKAM_GRPC_TLS_SERVER_NAME: Type.Optional(Type.String({ minLength: 1 })),
  /** HTTP/2 keepalive ping interval to workers; a worker that misses a ping for 10 s is lost. */
  MAKAM_GRPC_KEEPALIVE_MS: Type.Integer({ default: 15_000, minimum: 1000 }),
  /** BullMQ's job lock: a dispatcher that dies is noticed after one to two of these, and its job re-attached. */
  MAKAM_LOCK_MS: Type.Integer({ default: 30_000, minimum: 1000 }),
  /** How long a job may wait to reconnect to a worker that stopped answering before it is retried. */
  MAKAM_WORKER_RECONNECT_MS: Type.Integer({ default: 60_000, minimum: 1000 }),
  /** Attempts a trial job of a tune job gets (as MAKAM_JOB_ATTEMPTS does for the API's jobs). */
  MAKAM_JOB_ATTEMPTS: Type.Integer({ default: 3, minimum: 1, maximum: 20 }),
  /** The Python that runs the study process (`-m makam_study`); by default the checkout's workers-python venv, else python3. */
  MAKAM_STUDY_PYTHON: Type.Optional(Type.String({ minLength: 1 })),
  /** Tune jobs one dispatcher coordinates at once (they only wait on Redis). */
  MAKAM_TUNE_CONCURRENCY: Type.Integer({ default: 16, minimum: 1, maximum: 1000 }),
  /** How often a coordinator looks at its trials. */
  MAKAM_TUNE_POLL_MS: Type.Integer({ default: 1000, minimum: 50 }),
  /** Days a job is kept after it ends (record, events, metrics, model artifact); 0 keeps jobs forever. Fractions allowed. */
  MAKAM_JOB_RETENTION_DAYS: Type.Number({ default: 0, minimum: 0, maximum: 36500 }),
  /** How often ended jobs past their retention are looked for and removed. */
  MAKAM_RETENTION_SWEEP_MS: Type.Integer({ default: 60_000, minimum: 50 }),
};

export type DispatcherConfig = ReturnType<typeof loadDispatcherConfig>;
export const loadDispatcherConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(DispatcherConfigProperties, env);
