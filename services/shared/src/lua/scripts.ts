import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChainableCommander, Redis } from 'ioredis';

// Redis Lua scripts live beside this file as `<name>-<numberOfKeys>.lua`, each with a header that
// lists its KEYS and ARGV, as BullMQ keeps its commands; a line `--- @include "includes/<name>"`
// is replaced by includes/<name>.lua (a local function two scripts share), as in BullMQ's. They are read once per process and
// registered once per connection with ioredis's defineCommand, so a call sends EVALSHA (the text
// goes to Redis only when its script cache lacks it) rather than the whole script each time.

/** Every script the services run; each must have its file here (checked when this module loads). */
export const SCRIPT_NAMES = ['createJob', 'transition', 'appendWorkerEvent', 'reserveBytes', 'releaseBytes', 'removeDataset', 'createWebhook', 'admit', 'releaseClaim'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface LuaScript {
  numberOfKeys: number;
  lua: string;
}

export const LUA_DIR = path.dirname(fileURLToPath(import.meta.url));
const FILE = /^([A-Za-z]\w*)-(\d+)\.lua$/;
const INCLUDE = /^--- @include "(includes\/\w+)"$/gm;

/** The script's text with its includes in place (one level: an include includes nothing). */
function withIncludes(dir: string, text: string): string {
  return text.replace(INCLUDE, (_, name: string) => readFileSync(path.join(dir, `${name}.lua`), 'utf8'));
}

/** The scripts in `dir`, by name; throws on a name used twice or a listed script with no file. */
export function loadScripts(dir = LUA_DIR): Map<string, LuaScript> {
  const scripts = new Map<string, LuaScript>();
  for (const file of readdirSync(dir).sort()) {
    const m = FILE.exec(file);
    if (!m) continue;
    if (scripts.has(m[1]!)) throw new Error(`Lua script ${m[1]} is in ${dir} twice`);
    scripts.set(m[1]!, { numberOfKeys: Number(m[2]), lua: withIncludes(dir, readFileSync(path.join(dir, file), 'utf8')) });
  }
  for (const name of SCRIPT_NAMES) if (!scripts.has(name)) throw new Error(`no Lua script ${name}-<keys>.lua in ${dir}`);
  return scripts;
}

const SCRIPTS = loadScripts();

// Prefixed so that a script cannot shadow one of ioredis's own command methods.
const commandName = (name: ScriptName): string => `makam:${name}`;

type Command = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Runs script `name` on `redis` with `keys` (as many as its file name says) and `args`, registering
 * the scripts on that connection first if they are not yet.
 */
export async function runScript(redis: Redis, name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
  const script = SCRIPTS.get(name)!;
  if (keys.length !== script.numberOfKeys) throw new Error(`Lua script ${name} takes ${script.numberOfKeys} keys, given ${keys.length}`);
  const commands = redis as unknown as Record<string, Command | undefined>;
  if (!commands[commandName(name)]) for (const [n, s] of SCRIPTS) redis.defineCommand(commandName(n as ScriptName), s);
  return commands[commandName(name)]!(...keys, ...args);
}

/**
 * Adds a run of script `name` to `multi`, a MULTI made from `redis`, defining that script alone on
 * `redis` if it is not yet: ioredis copies every script a connection has onto each MULTI made from
 * it, and the connection a submission's MULTI goes on holds BullMQ's add script and this one only.
 */
export function scriptIn(multi: ChainableCommander, redis: Redis, name: ScriptName, keys: string[], args: Array<string | number>): void {
  const script = SCRIPTS.get(name)!;
  if (keys.length !== script.numberOfKeys) throw new Error(`Lua script ${name} takes ${script.numberOfKeys} keys, given ${keys.length}`);
  const commands = redis as unknown as Record<string, ((this: ChainableCommander, ...args: Array<string | number>) => unknown) | undefined>;
  if (!commands[commandName(name)]) redis.defineCommand(commandName(name), script);
  commands[commandName(name)]!.call(multi, ...keys, ...args);
}
