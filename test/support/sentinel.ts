// A Redis that fails over, for chaos tests: a primary, a replica and three sentinels, each a real
// redis-server process (Debian's binary runs a sentinel with --sentinel) on a free local port.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { RedisSettings } from '@makam/shared/redis';
import { freePort } from './ports.ts';

export const SENTINEL_NAME = 'mymaster';

/**
 * The durability settings docs/deploy.md explains: every write fsynced to the AOF before it is
 * acknowledged, and a primary that refuses writes while no replica is within 2 s of it (so a
 * primary cut off from the others stops taking writes the failover would throw away).
 */
export const DATA_NODE_ARGS = ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction', '--min-replicas-to-write', '1', '--min-replicas-max-lag', '2', '--repl-ping-replica-period', '1'];

interface Node {
  port: number;
  args: string[];
  child: ChildProcess;
}

export interface SentinelRedis {
  /** What every makam process gets: REDIS_SENTINELS and REDIS_SENTINEL_NAME (REDIS_URL: scheme only). */
  settings: RedisSettings;
  /** host:port of the data node the sentinels call primary now. */
  primary(): Promise<string>;
  /** SIGSTOPs the data node on `port`: it neither applies nor acknowledges replication until resumed. */
  pause(port: number): void;
  /** SIGCONTs a paused data node. */
  resume(port: number): void;
  /** SIGKILLs the data node on `port` (as a crash). */
  kill(port: number): Promise<void>;
  /** Starts the data node on `port` again, with its own AOF; the sentinels make it a replica. */
  restart(port: number): Promise<void>;
  /** Waits until the sentinels name a primary other than `port` and it takes writes. */
  failedOver(port: number, timeoutMs: number): Promise<string>;
  ports: { data: number[]; sentinels: number[] };
  stop(): Promise<void>;
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function ask<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

function spawnNode(args: string[]): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.on('error', () => {});
  return child;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

export interface SentinelRedisOptions {
  /** The data nodes' min-replicas-max-lag, in seconds (2; production's 10 for a test of that window). */
  maxLagS?: number;
}

export async function startSentinelRedis(dir: string, { maxLagS }: SentinelRedisOptions = {}): Promise<SentinelRedis> {
  const nodes = new Map<number, Node>();
  const sentinels: ChildProcess[] = [];
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  for (const port of [primaryPort, replicaPort]) {
    const nodeDir = path.join(dir, `node-${port}`);
    await mkdir(nodeDir, { recursive: true });
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, ...DATA_NODE_ARGS, ...(maxLagS ? ['--min-replicas-max-lag', String(maxLagS)] : []), ...(port === replicaPort ? ['--replicaof', '127.0.0.1', String(primaryPort)] : [])];
    nodes.set(port, { port, args, child: spawnNode(args) });
    await until(`redis-server on ${port}`, () => ask(port, (r) => r.ping()), 10_000);
  }
  await until('the replica to sync', () => ask(replicaPort, async (r) => (await r.info('replication')).includes('master_link_status:up')), 20_000);

  const sentinelPorts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    sentinelPorts.push(port);
    // Sentinels rewrite their own config file (what they learn of replicas and other sentinels).
    const conf = path.join(dir, `sentinel-${port}.conf`);
    await writeFile(conf, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
      `sentinel failover-timeout ${SENTINEL_NAME} 4000`,
      `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
      '',
    ].join('\n'));
    sentinels.push(spawnNode([conf, '--sentinel']));
  }
  const askSentinel = (port: number) => ask(port, (r) => r.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_NAME) as Promise<[string, string] | null>);
  await until('three sentinels that know each other and the replica', async () => {
    for (const port of sentinelPorts) {
      const [master] = (await ask(port, (r) => r.call('SENTINEL', 'master', SENTINEL_NAME))) as [string[]];
      const info = Object.fromEntries(Array.from({ length: master.length / 2 }, (_, i) => [master[2 * i], master[2 * i + 1]]));
      if (Number(info['num-other-sentinels']) < 2 || Number(info['num-slaves']) < 1) return false;
    }
    return true;
  }, 30_000);

  const primary = async () => {
    for (const port of sentinelPorts) {
      const addr = await askSentinel(port).catch(() => null);
      if (addr) return `${addr[0]}:${addr[1]}`;
    }
    throw new Error('no sentinel answers');
  };
  return {
    settings: { REDIS_URL: 'redis://', REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','), REDIS_SENTINEL_NAME: SENTINEL_NAME },
    ports: { data: [primaryPort, replicaPort], sentinels: sentinelPorts },
    primary,
    pause: (port) => void nodes.get(port)!.child.kill('SIGSTOP'),
    resume: (port) => void nodes.get(port)!.child.kill('SIGCONT'),
    kill: async (port) => stopChild(nodes.get(port)!.child, 'SIGKILL'),
    restart: async (port) => {
      const node = nodes.get(port)!;
      node.child = spawnNode(node.args);
      await until(`redis-server on ${port}`, () => ask(port, (r) => r.ping()), 10_000);
    },
    failedOver: (port, timeoutMs) =>
      until('the sentinels to promote the replica', async () => {
        const addr = await primary();
        if (addr.endsWith(`:${port}`)) return null;
        const role = await ask(Number(addr.split(':')[1]), (r) => r.call('ROLE') as Promise<[string]>);
        return role[0] === 'master' ? addr : null;
      }, timeoutMs),
    stop: async () => {
      await Promise.all([...sentinels.map((c) => stopChild(c, 'SIGTERM')), ...[...nodes.values()].map((n) => {
        n.child.kill('SIGCONT'); // a paused node would hold SIGTERM until resumed
        return stopChild(n.child, 'SIGTERM');
      })]);
    },
  };
}
