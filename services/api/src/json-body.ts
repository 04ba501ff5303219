// JSON request bodies, refused whole (400 naming where) rather than handed on when they would fail
// later: nested deeper than a limit (serialising it again would overflow the stack), a number that
// is not finite (JSON.parse makes 1e400 Infinity, which no field accepts and the worker cannot
// read), or a key that names a prototype (__proto__, constructor, prototype: merged into a plain
// object later it could pollute it).
import { ApiError } from './errors.ts';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** The body's nesting depth, counted before parsing (brackets inside strings do not count); stops past `max`. */
function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

const pathOf = (parts: Array<string | number>): string => parts.map(String).join('.') || 'body';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body's bytes as text; bytes that are not UTF-8 answer 400 rather than turn into U+FFFD. */
export function decodeUtf8(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ApiError(400, 'invalid_encoding', 'the body is not valid UTF-8; send JSON encoded as UTF-8', 'body');
  }
}

/** Parses a JSON body or throws a coded 400 naming the field. */
export function parseJsonBody(text: string, maxDepth: number): unknown {
  if (text.trim() === '') throw new ApiError(400, 'invalid_json', 'the body is empty; send a JSON object with Content-Type: application/json', 'body');
  if (exceedsDepth(text, maxDepth)) throw new ApiError(400, 'too_deep', `the body nests deeper than ${maxDepth} levels; send a flatter object`, 'body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, 'invalid_json', `the body is not valid JSON (${(err as Error).message}); send a JSON object`, 'body');
  }
  // Depth is bounded above, so the walk's stack is too.
  const stack: Array<{ v: unknown; path: Array<string | number> }> = [{ v: value, path: [] }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (typeof v === 'string') {
      // "\ud800" is valid JSON but no Unicode text: it could not be stored or sent on as UTF-8.
      if (!v.isWellFormed()) throw new ApiError(400, 'invalid_string', `'${pathOf(path)}' holds a lone surrogate (an escape like \\ud800 without its pair); send Unicode text`, pathOf(path));
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ApiError(400, 'invalid_number', `'${pathOf(path)}' is not a finite number; send a number within ±1.7976931348623157e308`, pathOf(path));
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, path: [...path, i] }));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (!k.isWellFormed()) throw new ApiError(400, 'invalid_string', `a key in '${pathOf(path)}' holds a lone surrogate; send Unicode text`, pathOf(path));
        if (FORBIDDEN_KEYS.has(k)) throw new ApiError(400, 'forbidden_key', `'${pathOf([...path, k])}': the key '${k}' is not accepted anywhere in a body; rename it`, pathOf([...path, k]));
        stack.push({ v: item, path: [...path, k] });
      }
    }
  }
  return value;
}
