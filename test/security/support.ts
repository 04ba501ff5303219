// Helpers of the hostile-input suite: raw HTTP requests (paths sent byte for byte, bodies as bytes),
// a /healthz probe on its own thread, a digest of what Redis stores, path encodings of a route,
// and the fields of a route's JSON schema with hostile values for each.
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import type { Redis } from 'ioredis';

// ---------------------------------------------------------------------------------------------
// Requests

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** When it was sent and answered, on the clock the probe uses (performance.timeOrigin + now()). */
  t0: number;
  t1: number;
  /** Set when no HTTP answer came: the connection failed or was closed. */
  error?: string;
}

export interface Outgoing {
  method: string;
  /** Sent as is: no normalisation of dot segments, encodings or case. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

export const clock = (): number => performance.timeOrigin + performance.now();

/** One request on a connection of its own (a hostile request must not poison a shared socket). */
export function send(port: number, out: Outgoing, timeoutMs = 15_000): Promise<Answer> {
  const t0 = clock();
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...out.headers };
    if (out.body) headers['content-length'] = out.body.length;
    let settled = false;
    const done = (a: Omit<Answer, 't0' | 't1'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...a, t0, t1: clock() });
    };
    let req: http.ClientRequest;
    try {
      req = http.request({ host: '127.0.0.1', port, method: out.method, path: out.path, headers, agent: false, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => done({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), error: String(err) }));
      });
    } catch (err) {
      // The client itself refuses the path (characters Node will not send): nothing reached the server.
      done({ status: 0, headers: {}, text: '', error: `not sent: ${(err as Error).message}` });
      return;
    }
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (err) => done({ status: 0, headers: {}, text: '', error: String(err) }));
    req.end(out.body);
  });
}

/** Whether an answer is the one error shape {"error": {"code", "message", "param"}} with a code. */
export function errorShape(a: Answer): { code: string; message: string; param: string | null } | null {
  if (!/^application\/json/.test(String(a.headers['content-type'] ?? ''))) return null;
  let body: unknown;
  try {
    body = JSON.parse(a.text);
  } catch {
    return null;
  }
  if (!body || typeof body !== 'object' || Object.keys(body).join() !== 'error') return null;
  const e = (body as { error: Record<string, unknown> }).error;
  if (!e || typeof e !== 'object' || Object.keys(e).sort().join() !== 'code,message,param') return null;
  if (typeof e.code !== 'string' || !e.code || typeof e.message !== 'string' || !e.message) return null;
  if (e.param !== null && typeof e.param !== 'string') return null;
  return e as { code: string; message: string; param: string | null };
}

// ---------------------------------------------------------------------------------------------
// The /healthz probe: its own thread, so the suite's own work never delays a sample; every
// sample's start and end are written to shared memory for the main thread to read.

const PROBE_SOURCE = `
const http = require('node:http');
const { workerData } = require('node:worker_threads');
const { port, everyMs, times, count, stop } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const clock = () => performance.timeOrigin + performance.now();
let inFlight = 0;
function probe() {
  if (Atomics.load(stop, 0)) return;
  if (inFlight < 8) {
    const i = Atomics.add(count, 0, 1) % (times.length / 3);
    times[i * 3] = clock(); times[i * 3 + 1] = 0; times[i * 3 + 2] = 0;
    inFlight++;
    const end = (status) => { times[i * 3 + 1] = clock(); times[i * 3 + 2] = status; inFlight--; };
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent }, (res) => { res.resume(); res.on('end', () => end(res.statusCode)); res.on('error', () => end(-1)); });
    req.on('error', () => end(-1));
  }
  setTimeout(probe, everyMs);
}
probe();
const wait = setInterval(() => { if (Atomics.load(stop, 0)) { clearInterval(wait); agent.destroy(); } }, 50);
`;

export class HealthProbe {
  private readonly slots = 4096;
  private readonly times = new Float64Array(new SharedArrayBuffer(8 * 3 * this.slots));
  private readonly count = new Int32Array(new SharedArrayBuffer(4));
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private worker: Worker | null = null;
  /** The slowest /healthz answer seen, and when. */
  slowestMs = 0;
  samples = 0;
  failures = 0;

  private readonly port: number;
  private readonly everyMs: number;

  constructor(port: number, everyMs = 20) {
    this.port = port;
    this.everyMs = everyMs;
  }

  start(): void {
    this.worker = new Worker(PROBE_SOURCE, { eval: true, workerData: { port: this.port, everyMs: this.everyMs, times: this.times, count: this.count, stop: this.stopFlag } });
  }

  async stop(): Promise<void> {
    Atomics.store(this.stopFlag, 0, 1);
    await this.worker?.terminate();
  }

  /**
   * The longest /healthz took among probes that overlapped [t0, t1]; waits (up to `waitMs`) for
   * probes started before t1 to finish, counting one still unanswered by then at its age.
   */
  async longestDuring(t0: number, t1: number, waitMs = 3000): Promise<{ ms: number; samples: number; failed: number }> {
    const deadline = clock() + waitMs;
    for (;;) {
      const n = Math.min(Atomics.load(this.count, 0), this.slots);
      let pending = false;
      let ms = 0;
      let samples = 0;
      let failed = 0;
      for (let i = 0; i < n; i++) {
        const s = this.times[i * 3]!;
        const e = this.times[i * 3 + 1]!;
        const status = this.times[i * 3 + 2]!;
        if (s > t1) continue;
        if (e === 0) {
          if (clock() < deadline) {
            pending = true;
            break;
          }
          ms = Math.max(ms, clock() - s);
          samples++;
          continue;
        }
        if (e < t0) continue;
        samples++;
        if (status !== 200) failed++;
        ms = Math.max(ms, e - s);
      }
      if (!pending) {
        this.slowestMs = Math.max(this.slowestMs, ms);
        return { ms, samples, failed };
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Samples taken so far (the ring keeps the last 4096). */
  taken(): number {
    return Atomics.load(this.count, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// What Redis stores

/** A digest of every key under the prefix and its value (DUMP), leaving out counters of limits, in one round trip. */
const DIGEST = `
local keys = redis.call('KEYS', ARGV[1])
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do
  if not string.find(k, ':ratelimit:', 1, true) then
    table.insert(parts, k)
    table.insert(parts, redis.call('DUMP', k))
  end
end
return redis.sha1hex(table.concat(parts, '|'))`;

/** `prefix` covers makam's keys and BullMQ's (MAKAM_QUEUE_PREFIX is `${prefix}-q` in the tests), so a shared Redis does not disturb it. */
export const digest = async (redis: Redis, prefix: string): Promise<string> => (await redis.eval(DIGEST, 0, `${prefix}*`)) as string;

export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

// ---------------------------------------------------------------------------------------------
// Path encodings: the ways one path can be spelt so that a check on the raw URL and the router
// disagree.

export interface PathVariant {
  label: string;
  path: string;
  /** Not a valid percent-encoding of UTF-8: a 400 before routing is a fair answer. */
  malformed?: boolean;
  /** Longer than a server is expected to take: 414 and 431 are fair answers. */
  overlong?: boolean;
}

const pct = (c: string, upper: boolean) => {
  const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? hex.toUpperCase() : hex}`;
};

export function pathVariants(p: string): PathVariant[] {
  const segs = p.split('/').slice(1);
  const join = (s: string[]) => `/${s.join('/')}`;
  const out: PathVariant[] = [];
  const add = (label: string, path: string, overlong = false) => {
    const malformed = /%c0%af|%00/i.test(path);
    if (path !== p && !out.some((v) => v.path === path)) out.push({ label, path, ...(overlong ? { overlong } : {}), ...(malformed ? { malformed } : {}) });
  };
  segs.forEach((seg, i) => {
    const at = seg.search(/[A-Za-z]/);
    if (at < 0) return;
    const enc = (upper: boolean) => segs.map((s, j) => (j === i ? s.slice(0, at) + pct(s[at]!, upper) + s.slice(at + 1) : s));
    add(`percent-encoded letter in segment ${i}`, join(enc(false)));
    if (i === 0) add(`percent-encoded letter (upper-case hex) in segment ${i}`, join(enc(true)));
    if (i === 0) add('every letter of segment 0 percent-encoded', join(segs.map((s, j) => (j === 0 ? [...s].map((c) => pct(c, false)).join('') : s))));
  });
  for (let i = 1; i < segs.length; i++) {
    const a = segs.slice(0, i).join('/');
    const b = segs.slice(i).join('/');
    if (i === 1 || i === segs.length - 1) {
      add(`encoded slash %2F before segment ${i}`, `/${a}%2F${b}`);
      add(`encoded slash %2f before segment ${i}`, `/${a}%2f${b}`);
      add(`double slash before segment ${i}`, `/${a}//${b}`);
      add(`dot segment before segment ${i}`, `/${a}/./${b}`);
      add(`dot-dot segment before segment ${i}`, `/${a}/x/../${b}`);
      add(`encoded dot-dot %2e%2e before segment ${i}`, `/${a}/x/%2e%2e/${b}`);
      add(`encoded dot-dot %2E%2E before segment ${i}`, `/${a}/x/%2E%2E/${b}`);
      add(`half-encoded dot-dot .%2e before segment ${i}`, `/${a}/x/.%2e/${b}`);
      add(`encoded dot %2e before segment ${i}`, `/${a}/%2e/${b}`);
      add(`backslash before segment ${i}`, `/${a}\\${b}`);
      add(`overlong UTF-8 slash %c0%af before segment ${i}`, `/${a}%c0%af${b}`);
      add(`full-width slash before segment ${i}`, `/${a}%ef%bc%8f${b}`);
    }
  }
  add('leading double slash', `/${p}`);
  add('leading dot-dot', `/x/..${p}`);
  add('leading encoded dot-dot', `/x/%2e%2e${p}`);
  add('upper case', p.toUpperCase());
  add('first segment upper case', join(segs.map((s, j) => (j === 0 ? s.toUpperCase() : s))));
  add('last segment capitalised', join(segs.map((s, j) => (j === segs.length - 1 ? s.charAt(0).toUpperCase() + s.slice(1) : s))));
  add('trailing slash', `${p}/`);
  add('trailing double slash', `${p}//`);
  add('trailing dot segment', `${p}/.`);
  add('trailing encoded null', `${p}%00`);
  add('trailing semicolon parameter', `${p};x=1`);
  add('trailing encoded question mark', `${p}%3F`);
  add('overlong path (8 KB)', `${p}/${'a'.repeat(8 * 1024)}`, true);
  add('overlong path (20 KB)', `${p}/${'a'.repeat(20 * 1024)}`, true);
  add('overlong query (20 KB)', `${p}?q=${'a'.repeat(20 * 1024)}`, true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The fields of a JSON schema, walked: objects, records (additionalProperties or
// patternProperties with a schema), arrays' items and every branch of a union.

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'array' | 'object';
const ALL_TYPES: JsonType[] = ['string', 'number', 'integer', 'boolean', 'null', 'array', 'object'];

export interface Field {
  /** Where it sits; '*' stands for a record's key (the seed's key, when it has one). */
  path: string[];
  /** The JSON types the field accepts (all of them for an unconstrained value). */
  types: Set<JsonType>;
  /** A pattern its strings must match, if one. */
  pattern?: string;
  /** The field is an object whose keys are free (a record, or additionalProperties: true). */
  freeKeys: boolean;
  /** The field is an object with declared properties. */
  object: boolean;
}

type Schema = Record<string, any>;

function typesOf(s: Schema): Set<JsonType> {
  const out = new Set<JsonType>();
  const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? [])] as Schema[];
  if (branches.length) for (const b of branches) for (const t of typesOf(b)) out.add(t);
  if (s.type) for (const t of [s.type].flat() as JsonType[]) out.add(t);
  if ('const' in s) out.add(jsonTypeOf(s.const));
  if (Array.isArray(s.enum)) for (const v of s.enum) out.add(jsonTypeOf(v));
  if (s.properties || s.additionalProperties || s.patternProperties) out.add('object');
  if (s.items) out.add('array');
  if (!out.size && !branches.length) return new Set(ALL_TYPES); // unconstrained
  if (out.has('number')) out.add('integer');
  return out;
}

function jsonTypeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

/** Every field under `schema` (the root itself not included), each once by path. */
export function fieldsOf(schema: Schema): Field[] {
  const byPath = new Map<string, Field>();
  const visit = (s: Schema, path: string[], depth: number) => {
    if (depth > 12) return;
    for (const b of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])] as Schema[]) visit(b, path, depth + 1);
    const children: Array<[string, Schema]> = [];
    for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) children.push([k, v]);
    if (s.additionalProperties && typeof s.additionalProperties === 'object') children.push(['*', s.additionalProperties]);
    for (const v of Object.values((s.patternProperties ?? {}) as Record<string, Schema>)) children.push(['*', v]);
    if (s.items && typeof s.items === 'object' && !Array.isArray(s.items)) children.push(['0', s.items]);
    for (const [k, child] of children) {
      const p = [...path, k];
      const key = p.join('.');
      const types = typesOf(child);
      const existing = byPath.get(key);
      const freeKeys = Boolean(child.additionalProperties === true || (child.additionalProperties && typeof child.additionalProperties === 'object') || child.patternProperties);
      if (existing) {
        for (const t of types) existing.types.add(t);
        existing.freeKeys ||= freeKeys;
        existing.object ||= Boolean(child.properties);
      } else {
        byPath.set(key, { path: p, types, freeKeys, object: Boolean(child.properties), ...(typeof child.pattern === 'string' ? { pattern: child.pattern } : {}) });
      }
      visit(child, p, depth + 1);
    }
  };
  visit(schema, [], 0);
  return [...byPath.values()];
}

/** A string that matches a simple pattern, with every + and * run `repeat` times. */
export function fromPattern(pattern: string, repeat: number): string | null {
  let src = pattern.replace(/^\^/, '').replace(/\$$/, '');
  let out = '';
  while (src.length) {
    let atom: string;
    if (src[0] === '[') {
      const end = src.indexOf(']');
      if (end < 0) return null;
      const cls = src.slice(1, end);
      if (cls.startsWith('^')) {
        atom = 'a';
      } else {
        // The top of the first range ([0-9] gives 9: long runs of it overflow integers).
        atom = cls[0] === '\\' ? cls[1]! : cls[1] === '-' && cls[2] ? cls[2] : cls[0]!;
      }
      src = src.slice(end + 1);
    } else if (src[0] === '\\') {
      atom = src[1] === 'd' ? '7' : src[1] === 's' ? ' ' : src[1]!;
      src = src.slice(2);
    } else if ('()|.?'.includes(src[0]!)) {
      return null; // not a simple pattern
    } else {
      atom = src[0]!;
      src = src.slice(1);
    }
    const q = /^(\+|\*|\{(\d+)(,(\d*))?\})/.exec(src);
    let n = 1;
    if (q) {
      if (q[1] === '+' || q[1] === '*') n = repeat;
      else n = q[4] ? Math.max(Number(q[2]), Math.min(repeat, Number(q[4]))) : q[3] !== undefined ? Math.max(Number(q[2]), repeat) : Number(q[2]);
      src = src.slice(q[0].length);
    }
    out += atom.repeat(n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hostile values. Each is raw JSON text (bytes), so non-finite literals, invalid UTF-8 and depths
// that JSON.stringify could not write are possible.

export interface Hostile {
  category: 'huge' | 'non-finite' | 'wrong type' | 'prototype key' | 'deep nesting' | 'invalid utf-8';
  label: string;
  raw: Buffer;
  /**
   * false for an edge the schema allows (a pattern-matching value with long runs): it may be
   * accepted, but never with a 5xx.
   */
  mustRefuse?: false;
}

const j = (v: unknown) => Buffer.from(JSON.stringify(v));
const deepArray = (n: number) => Buffer.from('['.repeat(n) + ']'.repeat(n));
const deepObject = (n: number) => Buffer.from('{"a":'.repeat(n) + '0' + '}'.repeat(n));
const INVALID_UTF8: Array<[string, Buffer]> = [
  ['a lone continuation byte 0xff', Buffer.from([0x22, 0x61, 0xff, 0x62, 0x22])],
  ['an overlong encoding of / (0xc0 0xaf)', Buffer.from([0x22, 0xc0, 0xaf, 0x22])],
  ['an encoded surrogate (0xed 0xa0 0x80)', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])],
  ['a truncated sequence (0xe2 0x82)', Buffer.from([0x22, 0x61, 0xe2, 0x82, 0x22])],
];

/** A representative of each JSON type, as a wrong value for a field that does not take it. */
const WRONG: Record<JsonType, Array<[string, unknown]>> = {
  string: [['a string', 'x']],
  number: [['a fraction', 1.5]],
  integer: [['an integer', 7]],
  boolean: [['a boolean', true]],
  null: [['null', null]],
  array: [['an array', ['x']]],
  object: [['an object', { x: 1 }]],
};

export interface HostileOptions {
  /** The length of a huge string: past any field's bound, under the body limit. */
  hugeString: number;
  /** Items in a huge array. */
  hugeArray: number;
  /** Nesting of a deep value. */
  depth: number;
  /** Picks one of several equivalent values for the field (rotates with the field's index). */
  pick: number;
}

/** The hostile values for one field: each category, values sampled where several are alike. */
export function hostileValues(field: Field, o: HostileOptions): Hostile[] {
  const out: Hostile[] = [];
  const rot = <T>(xs: T[], k = 0): T => xs[(o.pick + k) % xs.length]!;
  const numeric = field.types.has('number') || field.types.has('integer');
  const unconstrained = field.types.size === ALL_TYPES.length;
  // Huge: a long string, a long string of two-byte letters, a long array, an object with many keys.
  out.push({ category: 'huge', label: `a string of ${o.hugeString} characters`, raw: j('a'.repeat(o.hugeString)) });
  out.push({ category: 'huge', label: `a string of ${o.hugeString >> 1} two-byte letters`, raw: j('ğ'.repeat(o.hugeString >> 1)) });
  out.push({ category: 'huge', label: `an array of ${o.hugeArray} items`, raw: Buffer.from(`[${'0,'.repeat(o.hugeArray - 1)}0]`) });
  if (field.freeKeys || field.types.has('object')) {
    const n = Math.floor(o.hugeArray / 4);
    out.push({ category: 'huge', label: `an object of ${n} keys`, raw: Buffer.from(`{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`) });
  }
  if (field.pattern) {
    const long = fromPattern(field.pattern, o.hugeString);
    if (long && long.length > 64) out.push({ category: 'huge', label: `a string of ${long.length} characters that matches the pattern`, raw: j(long) });
    const digits = fromPattern(field.pattern, 40);
    if (digits && digits !== long) out.push({ category: 'huge', label: `a pattern-matching string with each repeat 40 long (${digits.slice(0, 24)}...)`, raw: j(digits), mustRefuse: false });
  }
  // Non-finite: the literal JSON.parse turns into Infinity, and the string forms a coercing
  // validator would turn into numbers.
  out.push({ category: 'non-finite', label: rot(['the literal 1e400', 'the literal -1e400']), raw: Buffer.from(rot(['1e400', '-1e400'])) });
  if (numeric) for (const s of ['Infinity', '-Infinity', 'NaN', '1e400']) out.push({ category: 'non-finite', label: `the string "${s}"`, raw: j(s) });
  // Wrong types: each JSON type the field does not take; a number field also gets a numeric string.
  if (!unconstrained) {
    for (const t of ALL_TYPES) {
      // An integer-only field takes no fraction (the 'number' representative is 1.5); a number field takes integers.
      if (field.types.has(t) || (t === 'integer' && field.types.has('number'))) continue;
      for (const [label, v] of WRONG[t]) out.push({ category: 'wrong type', label, raw: j(v) });
    }
    if (numeric && !field.types.has('string')) out.push({ category: 'wrong type', label: 'a number as a string ("12")', raw: j('12') });
    if (field.types.has('boolean') && !field.types.has('string')) out.push({ category: 'wrong type', label: 'a boolean as a string ("true")', raw: j('true') });
  }
  // Prototype keys as the value.
  out.push({ category: 'prototype key', label: rot(['{"__proto__": {...}}', '{"constructor": {"prototype": {...}}}', '{"prototype": {...}}']), raw: Buffer.from(rot(['{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"prototype":{"polluted":1}}'])) });
  // Deep nesting, arrays and objects.
  out.push({ category: 'deep nesting', label: `arrays nested ${o.depth} deep`, raw: deepArray(o.depth) });
  out.push({ category: 'deep nesting', label: `objects nested ${o.depth} deep`, raw: deepObject(Math.min(o.depth, 20_000)) });
  // Invalid UTF-8 in a string value, and an escaped lone surrogate.
  const [label, bytes] = rot(INVALID_UTF8);
  out.push({ category: 'invalid utf-8', label: `a string with ${label}`, raw: bytes });
  if (field.types.has('string')) out.push({ category: 'invalid utf-8', label: 'a string with an escaped lone surrogate \\ud800', raw: Buffer.from('"a\\ud800b"') });
  return out;
}

/** Keys no object may carry, and keys that name Object.prototype's members. */
export const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'];
export const PROTOTYPE_MEMBER_KEYS = ['toString', 'hasOwnProperty', 'valueOf', 'constructor', '__proto__'];

// ---------------------------------------------------------------------------------------------
// Bodies with a hostile value spliced in

const HOLE = '\u0000hostile\u0000';
const HOLE_JSON = JSON.stringify(HOLE);

/** The seed's concrete key for each '*' in a path: one whose value carries the rest of the path, else its first key, else 'x'. */
export function concretePath(seed: unknown, path: string[]): string[] {
  if (!path.length) return [];
  const [part, ...rest] = path as [string, ...string[]];
  const at = seed && typeof seed === 'object' ? (seed as Record<string, unknown>) : undefined;
  if (part !== '*') return [part, ...concretePath(at?.[part], rest)];
  const keys = at && !Array.isArray(at) ? Object.keys(at) : [];
  const key = keys.find((k) => has(at![k], concretePath(at![k], rest))) ?? keys[0] ?? 'x';
  return [key, ...concretePath(at?.[key], rest)];
}

export function has(seed: unknown, path: string[]): boolean {
  let at: any = seed;
  for (const part of path) {
    if (!at || typeof at !== 'object' || !(part in at)) return false;
    at = at[part];
  }
  return true;
}

export function get(seed: unknown, path: string[]): unknown {
  let at: any = seed;
  for (const part of path) at = at?.[part];
  return at;
}

/** The seed with the value at `path` replaced by `raw` bytes (objects on the way are made). */
export function splice(seed: unknown, path: string[], raw: Buffer): Buffer {
  const body = structuredClone(seed) as any;
  let at = body;
  for (const part of path.slice(0, -1)) {
    if (!at[part] || typeof at[part] !== 'object') at[part] = /^\d+$/.test(part) ? [] : {};
    at = at[part];
  }
  at[path.at(-1)!] = HOLE;
  const text = JSON.stringify(body);
  const i = text.indexOf(HOLE_JSON);
  return Buffer.concat([Buffer.from(text.slice(0, i)), raw, Buffer.from(text.slice(i + HOLE_JSON.length))]);
}

/** The seed with an extra key `key` (raw JSON text, so __proto__ stays a key) set to `raw` in the object at `path`. */
export function spliceKey(seed: unknown, path: string[], key: string, raw: Buffer): Buffer {
  const body = structuredClone(seed) as any;
  let at = body;
  for (const part of path) {
    if (!at[part] || typeof at[part] !== 'object') at[part] = {};
    at = at[part];
  }
  at[HOLE] = 0;
  const text = JSON.stringify(body);
  const hole = `${HOLE_JSON}:0`;
  const i = text.indexOf(hole);
  return Buffer.concat([Buffer.from(text.slice(0, i) + JSON.stringify(key) + ':'), raw, Buffer.from(text.slice(i + hole.length))]);
}
