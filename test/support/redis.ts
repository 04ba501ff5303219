// A real Redis for tests, found as the design says: REDIS_URL if set, else a testcontainers Redis
// where a Docker daemon answers, else a redis-server started on a free local port.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

async function ping(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch (err) {
      r.disconnect();
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

async function fromDocker(): Promise<TestRedis | null> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return null;
  try {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).withWaitStrategy(Wait.forLogMessage('Ready to accept connections')).start();
    return { url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`, stop: async () => void (await container.stop()) };
  } catch {
    return null; // The client is there but no daemon answers.
  }
}

/** A throwaway redis-server of this process's own on a free local port (no persistence); the benches
 * use it too, to measure against a Redis on this machine whatever REDIS_URL says. */
export async function startLocalRedis(): Promise<TestRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  await ping(url, 10_000);
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return; // a second stop, or it died
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startRedis(): Promise<TestRedis> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => {} };
  return (await fromDocker()) ?? (await startLocalRedis());
}

/** A prefix no other test shares, so tests never see each other's keys or queues. */
export const uniquePrefix = (): string => `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

export interface OwnRedis extends TestRedis {
  /** Kills the server (SIGKILL, as a crash) and starts it again on the same port and AOF file. */
  crashAndRestart(downMs: number): Promise<void>;
}

/** A redis-server of the test's own with AOF (fsync on every write), to crash and restart. */
export async function startOwnRedis(dir: string): Promise<OwnRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction'];
  let child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  await ping(url, 10_000);
  const stop = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  return {
    url,
    stop: () => stop('SIGTERM'),
    crashAndRestart: async (downMs) => {
      await stop('SIGKILL');
      await sleep(downMs);
      child = spawn('redis-server', args, { stdio: 'ignore' });
      await ping(url, 10_000);
    },
  };
}
