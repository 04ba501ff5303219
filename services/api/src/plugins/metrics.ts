// Prometheus metrics at GET /metrics (prom-client, a registry per app).
// - HTTP latency per route, measured here.
// - Everything else is read from Redis at scrape time, so every API replica reports the same
//   cluster-wide values (aggregate with max, not sum): queue depths per class (BullMQ
//   getJobCounts), jobs by status and job durations (one pipelined pass over the job records,
//   cached for a few seconds), workers and their memory per class (published by the dispatchers
//   with a TTL), and metric-ingest lag (observed by the dispatchers, summed in Redis).
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { INGEST_LAG_BUCKETS, Telemetry } from '@makam/shared/telemetry';
import { JOB_STATUSES, isTerminal, type JobStatus } from '@makam/shared/job-state';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { registry: Registry; webhookDeliveries: Counter<'outcome'> };
  }
}

const DURATION_BUCKETS = [10, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600];
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed', 'completed'] as const;
const SCAN_CACHE_MS = 5_000;
const SCAN_BATCH = 500;

interface JobScan {
  byStatus: Map<string, number>;
  durations: Array<{ resource_class: string; status: string; seconds: number }>;
}

export default fp(
  async (app) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'makam_api_' });
    const telemetry = new Telemetry(app.redis, app.config.MAKAM_REDIS_PREFIX);

    const http = new Histogram({
      name: 'makam_http_request_duration_seconds',
      help: 'HTTP request latency by route pattern, method and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      http.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });

    new Gauge({
      name: 'makam_queue_jobs',
      help: 'BullMQ jobs per resource class queue and state',
      labelNames: ['resource_class', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        await Promise.all(
          [...app.queues].map(async ([cls, queue]) => {
            const counts = await queue.getJobCounts(...QUEUE_STATES);
            for (const state of QUEUE_STATES) this.set({ resource_class: cls, state }, counts[state] ?? 0);
          }),
        );
      },
    });

    let cached: { at: number; scan: Promise<JobScan> } | null = null;
    const scanJobs = (): Promise<JobScan> => {
      if (cached && Date.now() - cached.at < SCAN_CACHE_MS) return cached.scan;
      const scan = (async () => {
        const byStatus = new Map<string, number>(JOB_STATUSES.map((s) => [s, 0]));
        const durations: JobScan['durations'] = [];
        for (let start = 0; ; start += SCAN_BATCH) {
          const ids = await app.redis.zrange(app.keys.jobs, start, start + SCAN_BATCH - 1);
          if (ids.length === 0) break;
          const p = app.redis.pipeline();
          for (const id of ids) p.hmget(app.keys.job(id), 'status', 'resource_class', 'started_at', 'finished_at');
          for (const [err, fields] of (await p.exec()) ?? []) {
            if (err) continue;
            const [status, cls, started, finished] = fields as Array<string | null>;
            if (!status) continue;
            byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
            if (isTerminal(status as JobStatus) && started && finished && started !== 'null' && finished !== 'null') {
              const seconds = (Date.parse(JSON.parse(finished)) - Date.parse(JSON.parse(started))) / 1000;
              if (seconds >= 0) durations.push({ resource_class: cls ? (JSON.parse(cls) as string) : '', status, seconds });
            }
          }
          if (ids.length < SCAN_BATCH) break;
        }
        return { byStatus, durations };
      })();
      cached = { at: Date.now(), scan };
      scan.catch(() => (cached = null));
      return scan;
    };

    new Gauge({
      name: 'makam_jobs',
      help: 'Jobs by status',
      labelNames: ['status'],
      registers: [registry],
      async collect() {
        const { byStatus } = await scanJobs();
        this.reset();
        for (const [status, n] of byStatus) this.set({ status }, n);
      },
    });

    new Histogram({
      name: 'makam_job_duration_seconds',
      help: 'Run time (started to finished) of the jobs that ended, by class and final status',
      labelNames: ['resource_class', 'status'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
      async collect() {
        const { durations } = await scanJobs();
        this.reset();
        for (const d of durations) this.observe({ resource_class: d.resource_class, status: d.status }, d.seconds);
      },
    });

    // Workers, as the dispatchers last published them.
    let workersAt: Promise<Awaited<ReturnType<Telemetry['workers']>>> | null = null;
    const workers = () => (workersAt ??= telemetry.workers().finally(() => setTimeout(() => (workersAt = null), 1000).unref()));
    new Gauge({
      name: 'makam_workers',
      help: 'Workers answering their dispatcher, per resource class',
      labelNames: ['resource_class'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const cls of app.resourceClasses) this.set({ resource_class: cls.name }, 0);
        for (const w of await workers()) this.inc({ resource_class: w.resource_class });
      },
    });
    for (const [name, help, field] of [
      ['makam_worker_memory_total_bytes', 'Training device memory of each worker (system memory on CPU)', 'memory_total_bytes'],
      ['makam_worker_memory_free_bytes', 'Free training device memory of each worker when last asked', 'memory_free_bytes'],
      ['makam_worker_active_runs', 'Runs in progress on each worker', 'active_runs'],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['resource_class', 'worker', 'device'],
        registers: [registry],
        async collect() {
          this.reset();
          for (const w of await workers()) this.set({ resource_class: w.resource_class, worker: w.address, device: w.gpu_name || w.device }, w[field]);
        },
      });
    }

    // A histogram whose buckets live in Redis: a hand-made collector in prom-client's format.
    const lagName = 'makam_metric_ingest_lag_seconds';
    const lagHelp = "Time from a worker's event (progress, metrics, log) to its storage in Redis, per class";
    registry.registerMetric({
      name: lagName,
      help: lagHelp,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
        for (const [cls, h] of await telemetry.lag()) {
          let cumulative = 0;
          h.buckets.forEach((n, i) => {
            cumulative += n;
            values.push({ metricName: `${lagName}_bucket`, labels: { resource_class: cls, le: i < INGEST_LAG_BUCKETS.length ? INGEST_LAG_BUCKETS[i]! : '+Inf' }, value: cumulative });
          });
          values.push({ metricName: `${lagName}_sum`, labels: { resource_class: cls }, value: h.sum });
          values.push({ metricName: `${lagName}_count`, labels: { resource_class: cls }, value: h.count });
        }
        return { name: lagName, help: lagHelp, type: 'histogram', aggregator: 'sum', values };
      },
    } as never);

    new Gauge({
      name: 'makam_event_stream_readers',
      help: 'Redis readers behind the open server-sent event streams of this process (one per watched job)',
      registers: [registry],
      collect() {
        this.set(app.hasDecorator('jobEvents') ? app.jobEvents.readerCount : 0);
      },
    });

    const webhookDeliveries = new Counter({
      name: 'makam_webhook_delivery_attempts',
      help: 'Webhook delivery attempts made by this process, by outcome (delivered, retrying, gave_up)',
      labelNames: ['outcome'],
      registers: [registry],
    });

    app.decorate('metrics', { registry, webhookDeliveries });
    // Public, as Prometheus scrapes it: cluster-wide counts, no tenant's data.
    app.get('/metrics', { schema: { hide: true }, config: { access: 'public' } }, async (_request, reply) => {
      const body = await registry.metrics();
      return reply.header('content-type', registry.contentType).send(body);
    });
  },
  { name: 'metrics' },
);
