import { connectWorker, workerCredentials, type WorkerClient, type WorkerTls } from '@makam/shared';

/** The Python workers one dispatcher drives, each running one job at a time. */
export class WorkerPool {
  private readonly clients = new Map<string, WorkerClient>();
  private readonly busy = new Set<string>();

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

  /** Takes `preferred` (a run to re-attach to) or any free worker. */
  acquire(preferred?: string | null): { address: string; client: WorkerClient } {
    const address = preferred && this.clients.has(preferred) ? preferred : [...this.clients.keys()].find((a) => !this.busy.has(a));
    if (!address) throw new Error('no free worker (concurrency exceeds the pool)');
    this.busy.add(address);
    return { address, client: this.clients.get(address)! };
  }

  release(address: string): void {
    this.busy.delete(address);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}
