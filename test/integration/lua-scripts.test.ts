// The Redis Lua scripts in services/shared/src/lua: named `<name>-<numberOfKeys>.lua` with a header
// that lists exactly those KEYS, loaded once per connection and run by SHA (EVALSHA).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRedis, type Redis } from '@makam/shared/redis';
import { LUA_DIR, SCRIPT_NAMES, loadScripts, runScript } from '../../services/shared/src/lua/scripts.ts';
import { startRedis, uniquePrefix, type TestRedis } from '../support/redis.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let server: TestRedis;
let redis: Redis;

before(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

test('every script file is named with its key count, lists its KEYS, ARGV and output, and is one the services run', () => {
  const files = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));
  assert.deepEqual(files.map((f) => f.replace(/-\d+\.lua$/, '')).sort(), [...SCRIPT_NAMES].sort());
  for (const file of files) {
    const n = Number(/-(\d+)\.lua$/.exec(file)![1]);
    const text = readFileSync(path.join(LUA_DIR, file), 'utf8');
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(text)?.[1];
    assert.ok(header, `${file} opens with a --[[ ]] header`);
    const listed = [...header.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
    assert.deepEqual([...new Set(listed)], Array.from({ length: n }, (_, i) => i + 1), `${file} lists KEYS[1..${n}]`);
    const used = [...text.slice(header.length).matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
    assert.ok(used.every((k) => k <= n), `${file} uses no key past KEYS[${n}]`);
    const argvUsed = new Set([...text.slice(header.length).matchAll(/ARGV\[(\d+)\]/g)].map((m) => m[1]));
    for (const a of argvUsed) assert.match(header, new RegExp(`ARGV\\[${a}\\]`), `${file} lists ARGV[${a}]`);
    assert.match(header, /Output:/, `${file} says what it returns`);
  }
});

test('an include is put in place: each script as sent has its shared functions and no include line left', () => {
  const scripts = loadScripts();
  for (const name of ['createJob', 'removeDataset']) {
    const lua = scripts.get(name)!.lua;
    assert.doesNotMatch(lua, /@include/, name);
    assert.match(lua, /local function giveBackExpiredPlaces\(/, name);
  }
});

test('no Lua is sent inline from the services: every script is a file here', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'gen') continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ts$/.test(e.name) && /redis\.call\(|\.eval\(|\.evalsha\(/.test(readFileSync(p, 'utf8'))) offenders.push(path.relative(root, p));
    }
  };
  walk(path.join(root, 'services'));
  assert.deepEqual(offenders, []);
});

test('a script is defined once per connection and runs by its SHA', async () => {
  const scripts = loadScripts();
  const prefix = uniquePrefix();
  const keys = [`${prefix}:bytes`, `${prefix}:refs`];
  const args = (id: string) => ['10', '15', id];
  // Counted as differences, so a shared Redis (REDIS_URL) needs no reset.
  const calls = async (): Promise<Record<string, number>> => {
    const stats = (await redis.info('commandstats')).split('\r\n');
    const of = (cmd: string): number => Number(stats.find((l) => l.startsWith(`cmdstat_${cmd}:`))?.match(/calls=(\d+)/)?.[1] ?? 0);
    return { eval: of('eval'), evalsha: of('evalsha') };
  };
  const start = await calls();
  assert.equal(await runScript(redis, 'reserveBytes', keys, args('a')), -1);
  assert.equal(await runScript(redis, 'reserveBytes', keys, args('b')), 10);
  assert.equal(await runScript(redis, 'reserveBytes', keys, args('c')), 10);
  const sha = createHash('sha1').update(scripts.get('reserveBytes')!.lua).digest('hex');
  assert.deepEqual(await redis.script('EXISTS', sha), [1]);
  // ioredis sends the text once per socket (EVAL, which also caches it in Redis); after that, only the SHA.
  const now = await calls();
  assert.deepEqual({ eval: now.eval! - start.eval!, evalsha: now.evalsha! - start.evalsha! }, { eval: 1, evalsha: 2 });
  await assert.rejects(runScript(redis, 'reserveBytes', [keys[0]!], args('d')), /takes 2 keys, given 1/);
});
