// @makam/client, the package the CLI and the dashboard share: its one server-sent-events parser
// (from a ReadableStream as the browser's fetch gives, or an async iterable, split anywhere), its
// formatters, and its errors (the API's error object kept; an unreachable API named). It stays
// browser-safe: no node: import, and nothing from outside the package but types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes, formatDuration, formatMetric, formatParam, formatParams, formatValue } from '@makam/client/format';
import { ApiError, MakamClient, UnreachableError } from '@makam/client/http';
import { parseSse, type SseMessage } from '@makam/client/sse';

const STREAM = ': keep-alive\r\n\r\nid: 1-0\nevent: event\ndata: {"a":1}\n\nid: 1-1\ndata: line one\ndata: line two\n\nevent: end\ndata: {"status":"succeeded"}\n\nretry: 100\n\n';
const EXPECTED: SseMessage[] = [
  { id: '1-0', event: 'event', data: '{"a":1}' },
  { id: '1-1', event: 'message', data: 'line one\nline two' },
  { id: null, event: 'end', data: '{"status":"succeeded"}' },
];

const collect = async (body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>) => {
  const out: SseMessage[] = [];
  for await (const m of parseSse(body)) out.push(m);
  return out;
};

test('parseSse reads a stream split at any byte, from a ReadableStream or an async iterable', async () => {
  const bytes = new TextEncoder().encode(STREAM);
  for (const size of [1, 3, 7, bytes.length]) {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) parts.push(bytes.slice(i, i + size));
    assert.deepEqual(await collect(new Blob(parts).stream()), EXPECTED, `ReadableStream, ${size}-byte chunks`);
    assert.deepEqual(await collect((async function* () { yield* parts; })()), EXPECTED, `async iterable, ${size}-byte chunks`);
  }
});

test('the formatters', () => {
  assert.equal(formatDuration(59.6), '1:00');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(NaN), '--:--');
  assert.equal(formatDuration(-1, '–'), '–');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536 * 1024), '1.5 MiB');
  assert.equal(formatMetric(0.87654), '0.877');
  assert.equal(formatMetric(null), '-');
  assert.equal(formatMetric(Infinity, 3, '–'), '–');
  assert.equal(formatValue(1.2634567), '1.263');
  assert.equal(formatParam(0.000241), '2.41e-4');
  assert.equal(formatParam(16), '16');
  assert.equal(formatParams({ learning_rate: 0.000241, warmup_ratio: 0.09, pooling: 'mean' }), 'learning_rate=2.41e-4, warmup_ratio=0.09, pooling=mean');
});

test("the client's errors: the API's error object, an unreachable API", async () => {
  const client = new MakamClient({ base: 'http://127.0.0.1:1/', apiKey: () => 'k' });
  assert.equal(client.base, 'http://127.0.0.1:1');
  assert.deepEqual(client.headers({ accept: 'x' }), { authorization: 'Bearer k', accept: 'x' });
  await assert.rejects(client.getJob('job_x'), (err) => err instanceof UnreachableError && /^cannot reach the API at http:\/\/127\.0\.0\.1:1: /.test(err.message));
  const refused = new Response(JSON.stringify({ error: { code: 'not_found', message: 'no job with id job_x', param: 'id' } }), { status: 404, statusText: 'Not Found' });
  await assert.rejects(client.check(refused), (err) => err instanceof ApiError && err.status === 404 && err.code === 'not_found' && err.message === 'no job with id job_x' && err.body?.param === 'id');
  await assert.rejects(client.check(new Response('oops', { status: 502 })), (err) => err instanceof ApiError && err.code === 'http_error' && err.message === 'HTTP 502');
});

test('the client is browser-safe: no node: imports, and only types from outside the package', async () => {
  const dir = path.join(import.meta.dirname, '../../services/client/src');
  for (const name of await readdir(dir)) {
    const text = await readFile(path.join(dir, name), 'utf8');
    for (const m of text.matchAll(/^(import|export)\b([^;]*?)\bfrom '([^']+)'/gms)) {
      const [, , clause, from] = m as unknown as [string, string, string, string];
      assert.ok(!from.startsWith('node:'), `${name} imports ${from}`);
      if (!from.startsWith('./')) assert.match(clause!, /^ type\b/, `${name} imports values from ${from}: only types may come from outside the package`);
    }
  }
});
