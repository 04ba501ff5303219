import { setTimeout as sleep } from 'node:timers/promises';
import { connectWorker, workerCredentials, type WorkerClient, type WorkerTls } from './grpc/worker-client.ts';
import { Detached, JobFailure } from './failures.ts';

const PROBE_MS = 3_000;
const WAIT_MS = 1_000;

/** The Python workers one dispatcher drives, each running one job at a time. */
export class WorkerPool {
  private readonly clients = new Map<string, WorkerClient>();
  private readonly busy = new Set<string>();
  /** The devices each worker offered when last probed (GetCapabilities.devices; 0 from an older worker: 1). */
  private readonly offered = new Map<string, number>();

  constructor(addresses: string[], tls: WorkerTls = {}, keepaliveMs?: number) {
    const credentials = workerCredentials(tls);
    for (const address of addresses) this.clients.set(address, connectWorker(address, credentials, { keepaliveMs, serverName: tls.serverName }));
  }

  get size(): number {
    return this.clients.size;
  }

  has(address: string): boolean {
    return this.clients.has(address);
  }

  /**
   * Takes `preferred` (a run to re-attach to: that worker or none), or a free worker that answers
   * and offers at least `devices` devices. A job waits here, queued, while every free worker is
   * down, rather than spending its attempts on a worker that is gone; once every worker has
   * answered and none offers `devices`, it fails (no retry can help).
   */
  async acquire(preferred: string | null, signal: AbortSignal, onWait?: () => void, devices = 1): Promise<{ address: string; client: WorkerClient }> {
    if (preferred && this.clients.has(preferred)) {
      this.busy.add(preferred);
      return { address: preferred, client: this.clients.get(preferred)! };
    }
    for (let waited = false; ; waited = true) {
      for (const [address, client] of this.clients) {
        if (this.busy.has(address)) continue;
        this.busy.add(address); // held while it is probed
        const caps = await client.getCapabilities({}, { timeoutMs: PROBE_MS, signal }).catch(() => null);
        if (caps) this.offered.set(address, Math.max(1, caps.devices));
        if (caps && this.offered.get(address)! >= devices) return { address, client };
        this.busy.delete(address);
      }
      if (signal.aborted) throw new Detached();
      const known = [...this.clients.keys()].map((a) => this.offered.get(a));
      if (known.every((n) => n !== undefined && n < devices)) {
        throw new JobFailure('worker_too_small', `the job asks for ${devices} devices and the class's workers offer ${Math.max(...(known as number[]))} (MAKAM_WORKER_DEVICES); lower devices or add the class's devices count to its workers`);
      }
      if (!waited) onWait?.();
      await sleep(WAIT_MS, undefined, { signal }).catch(() => undefined);
    }
  }

  release(address: string): void {
    this.busy.delete(address);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}
