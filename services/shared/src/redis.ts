import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';

/**
 * Where Redis is and how to reach it: the URL (`redis://` or `rediss://`, credentials in it) and,
 * for TLS, PEM files: the CA of the server's certificate (else the system's CAs), and a client
 * certificate and key for a Redis that asks for one (`tls-auth-clients`). Every process's config
 * is one of these; the files are read when a connection is made.
 *
 * With `REDIS_SENTINELS` (host:port,...) the primary is the one those sentinels name
 * `REDIS_SENTINEL_NAME`, found again after a failover; the URL then gives only the scheme (rediss:
 * TLS to the sentinels and the nodes, with the same files), the credentials and the database of
 * the nodes, and `REDIS_SENTINEL_PASSWORD` is the sentinels' own (`requirepass` in sentinel.conf).
 */
export interface RedisSettings {
  REDIS_URL: string;
  MAKAM_REDIS_TLS_CA?: string | undefined;
  MAKAM_REDIS_TLS_CERT?: string | undefined;
  MAKAM_REDIS_TLS_KEY?: string | undefined;
  REDIS_SENTINELS?: string | undefined;
  REDIS_SENTINEL_NAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
}

const TLS_FILES = ['MAKAM_REDIS_TLS_CA', 'MAKAM_REDIS_TLS_CERT', 'MAKAM_REDIS_TLS_KEY'] as const;
const SENTINEL_VARS = ['REDIS_SENTINELS', 'REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const;
export const DEFAULT_SENTINEL_NAME = 'mymaster';

/** `host:port,host:port` as ioredis's `sentinels`; throws naming the variable and the bad entry. */
export function parseSentinels(list: string): { host: string; port: number }[] {
  return list.split(',').map((entry) => {
    const m = /^\s*(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):([0-9]{1,5})\s*$/.exec(entry);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) throw new Error(`REDIS_SENTINELS: "${entry}" is not host:port (e.g. REDIS_SENTINELS=sentinel-0:26379,sentinel-1:26379,sentinel-2:26379)`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * Checks the Redis settings that one variable alone cannot: TLS files only with a rediss:// URL,
 * a client certificate only with its key, every file readable. The message names the variable
 * (and never the URL, which may hold a password).
 */
export function checkRedisSettings(settings: RedisSettings): void {
  const set = TLS_FILES.filter((name) => settings[name]);
  if (set.length && !/^rediss:\/\//i.test(settings.REDIS_URL)) throw new Error(`${set.join(', ')} set, but REDIS_URL is not a rediss:// URL`);
  if (Boolean(settings.MAKAM_REDIS_TLS_CERT) !== Boolean(settings.MAKAM_REDIS_TLS_KEY)) throw new Error('MAKAM_REDIS_TLS_CERT and MAKAM_REDIS_TLS_KEY go together');
  if (settings.REDIS_SENTINELS) parseSentinels(settings.REDIS_SENTINELS);
  else if (settings.REDIS_SENTINEL_PASSWORD) throw new Error('REDIS_SENTINEL_PASSWORD set, but REDIS_SENTINELS is not: list the sentinels (host:port,...)');
  for (const name of set) {
    try {
      readFileSync(settings[name]!);
    } catch (err) {
      throw new Error(`${name}: cannot read ${settings[name]} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
}

/** ioredis's TLS options for `settings` (undefined for a plaintext URL). */
function tlsOptions(settings: RedisSettings): RedisOptions['tls'] {
  if (!/^rediss:\/\//i.test(settings.REDIS_URL)) return undefined;
  const read = (file: string | undefined) => (file ? readFileSync(file) : undefined);
  const tls = { ca: read(settings.MAKAM_REDIS_TLS_CA), cert: read(settings.MAKAM_REDIS_TLS_CERT), key: read(settings.MAKAM_REDIS_TLS_KEY) };
  return Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined));
}

/**
 * ioredis's reconnectOnError: 2 (reconnect, send again) for a write refused with READONLY (a node
 * demoted to replica, until the reconnect finds the primary) or NOREPLICAS, always when
 * `noReplicasWaitMs` is unset, else while this connection's spell of them is younger than
 * `noReplicasWaitMs`; past that, false (the caller gets the refusal at once, until a spell ends: no
 * refusal for `noReplicasWaitMs`). A request waits at most about that long for a primary that takes
 * its writes instead of as long as none does (a READONLY lasts for ever on a URL that names a node
 * demoted for good).
 */
function resendRefusedWrites(noReplicasWaitMs: number | undefined): (err: Error) => 2 | false {
  let spellSince = 0;
  let lastRefusal = -Infinity;
  return (err) => {
    if (!REFUSED_WRITE.test(err.message)) return false;
    if (noReplicasWaitMs === undefined) return 2;
    const now = Date.now();
    if (now - lastRefusal > noReplicasWaitMs) spellSince = now;
    lastRefusal = now;
    return now - spellSince < noReplicasWaitMs ? 2 : false;
  };
}

/**
 * Opens a Redis connection. `blocking` connections (BullMQ Workers, stream readers) retry commands
 * forever, as BullMQ requires; request-serving connections fail fast so an API call answers 503
 * rather than hanging while Redis is away. A URL alone is a plaintext Redis, or a rediss:// one
 * whose certificate the system's CAs vouch for. `autoPipelining`: the commands issued in one tick
 * go out in one write (ioredis's enableAutoPipelining; MULTI is never merged), for a connection
 * many requests share; not for BullMQ's connections, whose authors advise against it.
 * `noReplicasWaitMs`: how long writes refused with NOREPLICAS or READONLY are sent again before the
 * refusal reaches the caller (unset: until a replica, or a primary, is back, as a dispatcher's
 * progress and results must).
 * `coalesceWrites`: everything sent in one tick, MULTIs included, goes out in one socket write
 * (coalesceWrites below), for the API's submissions.
 */
export function createRedis(
  target: RedisSettings | string,
  { blocking = false, autoPipelining = false, noReplicasWaitMs, coalesceWrites = false }: { blocking?: boolean; autoPipelining?: boolean; noReplicasWaitMs?: number; coalesceWrites?: boolean } = {},
): Redis {
  const redis = connect(target, { blocking, autoPipelining, noReplicasWaitMs });
  return coalesceWrites ? coalesceTickWrites(redis) : redis;
}

/**
 * Corks the connection's socket at the first write of a tick and uncorks it on the next, so the
 * MULTIs of requests that reach their submission together (the front door's replies arrive
 * together, auto-pipelined) leave in one write and Redis reads them in one read: ioredis's
 * auto-pipelining merges single commands this way but never a MULTI. Measured on POST /v1/jobs
 * (bench/api-profile.ts, 16 clients): Redis's socket reads 0.62-0.68 -> 0.39-0.45 a request on a quiet
 * machine, the API's CPU unchanged there and lower only under load (README). Each connect brings a
 * new socket, so each gets the wrapper.
 */
function coalesceTickWrites(redis: Redis): Redis {
  redis.on('connect', () => {
    const stream = redis.stream as (typeof redis.stream & { makamCoalesced?: true }) | undefined;
    if (!stream || stream.makamCoalesced) return;
    stream.makamCoalesced = true;
    const write = stream.write;
    let corked = false;
    stream.write = function (this: typeof stream, ...args: Parameters<typeof write>) {
      if (!corked) {
        corked = true;
        stream.cork();
        process.nextTick(() => {
          corked = false;
          stream.uncork();
        });
      }
      return write.apply(this, args);
    } as typeof write;
  });
  return redis;
}

function connect(
  target: RedisSettings | string,
  { blocking, autoPipelining, noReplicasWaitMs }: { blocking: boolean; autoPipelining: boolean; noReplicasWaitMs: number | undefined },
): Redis {
  const settings = typeof target === 'string' ? { REDIS_URL: target } : target;
  const tls = tlsOptions(settings);
  const common: RedisOptions = {
    maxRetriesPerRequest: blocking ? null : 2,
    enableAutoPipelining: autoPipelining,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // A connection still open to a primary that was demoted answers writes with READONLY, and a
    // primary without a replica in reach (min-replicas-to-write) with NOREPLICAS: reconnect
    // (through the sentinels, to whichever node is primary now) and send the command again, so a
    // write waits out a failover instead of failing the job that made it.
    reconnectOnError: resendRefusedWrites(noReplicasWaitMs),
    lazyConnect: false,
    tls,
  };
  if (!settings.REDIS_SENTINELS) return made(new Redis(settings.REDIS_URL, common), noReplicasWaitMs);
  const url = new URL(settings.REDIS_URL);
  return made(new Redis({
    ...common,
    sentinels: parseSentinels(settings.REDIS_SENTINELS),
    name: settings.REDIS_SENTINEL_NAME || DEFAULT_SENTINEL_NAME,
    role: 'master',
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    db: Number(url.pathname.slice(1) || 0),
    sentinelPassword: settings.REDIS_SENTINEL_PASSWORD || undefined,
    enableTLSForSentinelMode: Boolean(tls),
    sentinelTLS: tls,
    // Not failoverDetector: its disconnect on +switch-master, landing while the connection is
    // still asking the sentinels for the primary, ends it for good (ioredis 5.11, seen in
    // test/chaos/sentinel-failover.test.ts). A dead primary's sockets close by themselves, and a
    // demoted one answers READONLY (above).
    sentinelRetryStrategy: (times) => Math.min(times * 200, 2000),
  }), noReplicasWaitMs);
}

// How long each connection createRedis made sends a refused write (NOREPLICAS, READONLY) again
// (waitMs undefined: until it is taken), for execTransaction.
const noReplicasWaits = new WeakMap<Redis, { waitMs: number | undefined }>();

function made(redis: Redis, noReplicasWaitMs: number | undefined): Redis {
  noReplicasWaits.set(redis, { waitMs: noReplicasWaitMs });
  return keepTransactionsWhole(settleOnDisconnect(redis));
}

// The replies of a write refused whole, nothing of it stored, that a connection sends again:
// READONLY (the node is a replica: a primary demoted in a failover) and NOREPLICAS.
const REFUSED_WRITE = /^(READONLY|NOREPLICAS)\b/;

/**
 * A write refused with a reply of `codes` (a script's error keeps the code first), so nothing of it
 * was stored, or the EXECABORT of a MULTI that Redis discarded whole for it: a queued command refused
 * (in previousErrors) or the EXEC itself ("EXECABORT Transaction discarded because of: READONLY ...").
 */
function refusedWith(err: unknown, codes: string): boolean {
  const message = (err as Error | null)?.message;
  if (typeof message !== 'string') return false;
  if (new RegExp(`^(${codes})\\b`).test(message)) return true;
  if (!message.startsWith('EXECABORT')) return false;
  const previous = (err as { previousErrors?: unknown[] }).previousErrors;
  return new RegExp(`\\b(${codes})\\b`).test(message) || (Array.isArray(previous) && previous.some((e) => refusedWith(e, codes)));
}

/** A write the primary refused because no replica is in reach (min-replicas-to-write); nothing of it was stored. */
export const isNoReplicas = (err: unknown): boolean => refusedWith(err, 'NOREPLICAS');

/** A write refused by a node that is a replica now (READONLY: a primary demoted in a failover); nothing of it was stored. */
export const isReadOnly = (err: unknown): boolean => refusedWith(err, 'READONLY');

/** A write refused whole that a createRedis connection sends again (READONLY or NOREPLICAS); nothing of it was stored. */
export const isRefusedWrite = (err: unknown): boolean => refusedWith(err, 'READONLY|NOREPLICAS');

/**
 * ioredis resends a command refused with READONLY or NOREPLICAS (reconnectOnError 2) alone, even one
 * queued in a MULTI: outside its transaction, were it not that the reconnect then drops it, so the MULTI's
 * EXECABORT lists "Command aborted due to connection close" and not why. Refuse such a command as
 * itself: Redis discards the whole MULTI (redis-server 7: one refused queued command, or a refused
 * EXEC, and nothing of it is applied), and execTransaction sends it again whole.
 */
function keepTransactionsWhole(redis: Redis): Redis {
  type Item = { command: { inTransaction?: boolean; reject(err: Error): void } };
  const internal = redis as unknown as { handleReconnection(err: Error, item: Item): void };
  const handle = internal.handleReconnection.bind(redis);
  internal.handleReconnection = (err, item) => {
    if (item.command.inTransaction && REFUSED_WRITE.test(err.message)) return item.command.reject(err);
    handle(err, item);
  };
  return redis;
}

/**
 * Sends the MULTI `build` makes (anew each time: an ioredis MULTI is sent once) and answers its
 * replies. A MULTI refused with NOREPLICAS or READONLY (isRefusedWrite: Redis applied none of it) is
 * sent again, whole, for as long as `redis` sends a single refused write again (createRedis's
 * noReplicasWaitMs; unset: until a primary takes it, as a dispatcher's writes must); past that, or
 * for a connection createRedis did not make, the refusal is thrown.
 */
export async function execTransaction(redis: Redis, build: () => ChainableCommander | Promise<ChainableCommander>): Promise<[Error | null, unknown][] | null> {
  const waits = noReplicasWaits.get(redis);
  const since = Date.now();
  for (let tries = 0; ; tries++) {
    const multi = await build();
    try {
      return await multi.exec();
    } catch (err) {
      if (!waits || !isRefusedWrite(err) || (waits.waitMs !== undefined && Date.now() - since >= waits.waitMs)) throw err;
      await sleep(Math.min(100 * 2 ** tries, 1000));
    }
  }
}

/**
 * ioredis 5.11: disconnect() while the connection waits to reconnect leaves the commands queued for
 * the reconnect pending for ever (no close event comes to flush them; redis/ioredis#2169). A
 * blocking read loop awaiting one then never ends, and neither does the close that awaits the loop
 * (an API shut down just after a NOREPLICAS spell, whose resends reconnect each time). End them as a
 * disconnect of a live connection does.
 */
function settleOnDisconnect(redis: Redis): Redis {
  const disconnect = redis.disconnect.bind(redis);
  redis.disconnect = (reconnect = false) => {
    const stranded = !reconnect && redis.status === 'reconnecting';
    disconnect(reconnect);
    if (!stranded) return;
    type Item = { command: { reject(err: Error): void } };
    const internal = redis as unknown as { setStatus(status: string): void; flushQueue(err: Error): void; prevCommandQueue?: { shift(): Item | undefined } | null };
    const err = new Error('Connection is closed.');
    internal.setStatus('end');
    internal.flushQueue(err);
    // Commands in flight when the connection dropped wait there for the reconnect's resend.
    for (let item = internal.prevCommandQueue?.shift(); item; item = internal.prevCommandQueue?.shift()) item.command.reject(err);
    internal.prevCommandQueue = null;
  };
  return redis;
}

/** The Redis settings as environment variables, for a child process (the study process). */
export function redisEnv(settings: RedisSettings): Record<string, string | undefined> {
  return { REDIS_URL: settings.REDIS_URL, ...Object.fromEntries([...TLS_FILES, ...SENTINEL_VARS].map((name) => [name, settings[name]])) };
}
export type { Redis };
