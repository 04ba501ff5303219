// What a dispatcher reports for operators, through Redis: its workers' GetCapabilities (each
// with a TTL, refreshed every interval, so a dead dispatcher's workers drop off the list) and the
// metric-ingest lag of the runs it follows (the worker's event time to the moment the event is
// stored in Redis), batched and added to its class's histogram each interval.
import { Telemetry, emptyLag, observeLag, type LagHistogram } from '@makam/shared/telemetry';
import { connectWorker, type WorkerClient } from './grpc/worker-client.ts';
import { createRedis, type Redis } from '@makam/shared/redis';
import type { Logger } from '@makam/shared/logger';
import type { DispatcherConfig } from './config.ts';

/** How often workers are asked for their capabilities and lag observations are flushed. */
const INTERVAL_MS = 10_000;
/** How long a published worker stays listed without a refresh. */
const TTL_S = 30;
const CALL_MS = 5_000;

export class DispatcherTelemetry {
  private readonly cls: string;
  private readonly log: Logger;
  private readonly redis: Redis;
  private readonly telemetry: Telemetry;
  private readonly clients: Map<string, WorkerClient>;
  private lag: LagHistogram = emptyLag();
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;

  constructor(config: DispatcherConfig, log: Logger, onRedisError: (err: Error) => void) {
    this.cls = config.MAKAM_CLASS;
    this.log = log;
    this.redis = createRedis(config);
    this.redis.on('error', onRedisError);
    this.telemetry = new Telemetry(this.redis, config.MAKAM_REDIS_PREFIX);
    // Separate channels from the pool's, so a capabilities call never queues behind a transfer.
    this.clients = new Map(config.MAKAM_WORKERS.split(',').map((a) => [a, connectWorker(a)]));
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), INTERVAL_MS);
    this.timer.unref();
  }

  /** Publishes every answering worker and flushes the lag observations; never throws. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    await this.publishWorkers();
    await this.flushLag();
  }

  private async publishWorkers(): Promise<void> {
    await Promise.all(
      [...this.clients].map(async ([address, client]) => {
        try {
          const caps = await client.getCapabilities({}, { timeoutMs: CALL_MS });
          await this.telemetry.publishWorker(
            {
              object: 'worker',
              address,
              resource_class: this.cls,
              worker_id: caps.workerId,
              device: caps.device,
              gpu_name: caps.gpuName,
              memory_total_bytes: Number(caps.memoryTotalBytes),
              memory_free_bytes: Number(caps.memoryFreeBytes),
              active_runs: caps.activeRuns,
              families: [...caps.families],
              versions: { ...caps.versions },
              seen_at: new Date().toISOString(),
            },
            TTL_S,
          );
        } catch (err) {
          this.log.debug({ worker: address, err: (err as Error).message }, 'worker capabilities not published');
        }
      }),
    );
  }

  private async flushLag(): Promise<void> {
    const batch = this.lag;
    this.lag = emptyLag();
    try {
      await this.telemetry.addLag(this.cls, batch);
    } catch (err) {
      // Put them back for the next flush.
      batch.buckets.forEach((n, i) => (this.lag.buckets[i]! += n));
      this.lag.sum += batch.sum;
      this.lag.count += batch.count;
      this.log.debug({ err: (err as Error).message }, 'ingest lag not flushed');
    }
  }

  /**
   * The client a RunDriver uses, with WatchRun measured: the driver asks for the next event only
   * after it has stored the previous one, so the moment the stream is resumed is the moment the
   * last event was stored. The final event (then an artifact transfer) is not counted.
   */
  measure(client: WorkerClient): WorkerClient {
    const lag = () => this.lag;
    const watchRun: WorkerClient['watchRun'] = (request, options) => {
      const inner = client.watchRun(request, options);
      return (async function* () {
        for await (const event of inner) {
          yield event;
          const emitted = Number(event.timeUnixMs);
          if (emitted > 0) observeLag(lag(), (Date.now() - emitted) / 1000);
        }
      })() as ReturnType<WorkerClient['watchRun']>;
    };
    return { ...client, watchRun };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.refreshing;
    await this.flushLag();
    for (const c of this.clients.values()) c.close();
    this.redis.disconnect();
  }
}
