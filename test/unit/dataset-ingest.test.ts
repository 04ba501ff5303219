import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BlobStore } from '@makam/shared/blob-store';
import { ingestDataset } from '../../services/api/src/datasets/ingest.ts';
import { ApiError } from '../../services/api/src/errors.ts';

const store = async () => new BlobStore(await mkdtemp(path.join(tmpdir(), 'makam-ingest-')));
const body = (s: string | Buffer) => Readable.from([typeof s === 'string' ? Buffer.from(s) : s]);

async function refused(p: Promise<unknown>, code: string, param?: string) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (param) assert.equal(err.param, param);
    return true;
  });
}

test('JSONL: counts rows and labels, normalizes to JSON lines under the sha256', async () => {
  const s = await store();
  const r = await ingestDataset(body('{"text":"gurbet yolu","label":"arabesk"}\n\n{"text":"gitar sesi","label":"rock"}\r\n{"text":"dert","label":"arabesk"}'), 'jsonl', s, 1e6);
  assert.equal(r.rows, 3);
  assert.deepEqual(r.labels, ['arabesk', 'rock']);
  assert.deepEqual(r.label_counts, { arabesk: 2, rock: 1 });
  const stored = await readFile(s.datasetPath(r.sha256), 'utf8');
  assert.deepEqual(stored.trim().split('\n').map((l) => JSON.parse(l)), [
    { text: 'gurbet yolu', label: 'arabesk' },
    { text: 'gitar sesi', label: 'rock' },
    { text: 'dert', label: 'arabesk' },
  ]);
});

test('CSV with quoted commas, quotes and line breaks gives the same dataset as JSONL', async () => {
  const s = await store();
  const csv = 'text,label\r\n"yaşamak, ağlamak","arabesk"\r\n"dedi ki ""gel""\nsonra gitti",pop\r\n';
  const jsonl = '{"text":"yaşamak, ağlamak","label":"arabesk"}\n{"text":"dedi ki \\"gel\\"\\nsonra gitti","label":"pop"}\n';
  const a = await ingestDataset(body(csv), 'csv', s, 1e6);
  const b = await ingestDataset(body(jsonl), 'jsonl', s, 1e6);
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.rows, 2);
});

test('refusals name the problem and store nothing', async () => {
  const s = await store();
  await refused(ingestDataset(body('{"text":"a","label":"x"}\n{"text":"b"}\n'), 'jsonl', s, 1e6), 'missing_field', 'label');
  await refused(ingestDataset(body('{"label":"x"}\n'), 'jsonl', s, 1e6), 'missing_field', 'text');
  await refused(ingestDataset(body('{"text":"  ","label":"x"}\n'), 'jsonl', s, 1e6), 'empty_text', 'text');
  await refused(ingestDataset(body('{"text":"a","label":"x"}\n{"text":"b","label":"x"}\n'), 'jsonl', s, 1e6), 'too_few_labels');
  await refused(ingestDataset(body('not json\n'), 'jsonl', s, 1e6), 'invalid_json', 'line 1');
  await refused(ingestDataset(body(''), 'jsonl', s, 1e6), 'empty_dataset');
  await refused(ingestDataset(body(Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a])), 'jsonl', s, 1e6), 'invalid_encoding');
  await refused(ingestDataset(body('text,label\n"open quote,x\n'), 'csv', s, 1e6), 'invalid_csv');
  await refused(ingestDataset(body('{"text":"a","label":"x"}\n'.repeat(100)), 'jsonl', s, 500), 'dataset_too_large');
  const left = await readdir(s.root, { recursive: true }).catch(() => []);
  assert.deepEqual(left.filter((f) => String(f).endsWith('.jsonl')), [], 'no dataset file may remain after a refusal');
  const tmp = await readdir(path.join(s.root, 'tmp')).catch(() => []);
  assert.deepEqual(tmp, [], 'no temporary file may remain');
});

test('JSONL: long lines of multi-byte text across read chunks come out whole; limits come from the caller', async () => {
  const s = await store();
  // 150 KB lines span several 64 KiB reads, with two-byte characters cut at chunk edges.
  const long = 'çğış '.repeat(20_000);
  const r = await ingestDataset(body(`{"text":"a","label":"x"}\r\n{"text":"${long}","label":"y"}\n{"text":"${long}z","label":"x"}`), 'jsonl', s, 1e7);
  assert.equal(r.rows, 3);
  const rows = (await readFile(s.datasetPath(r.sha256), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { text: string });
  assert.equal(rows[1]!.text, long);
  assert.equal(rows[2]!.text, `${long}z`);
  const limits = { maxTextBytes: 100_000, maxLabelChars: 3, maxLabels: 2 };
  await refused(ingestDataset(body(`{"text":"a","label":"x"}\n{"text":"${long}","label":"y"}\n`), 'jsonl', s, 1e7, limits), 'line_too_long', 'line 2');
  await refused(ingestDataset(body('{"text":"a","label":"x"}\n{"text":"b","label":"long"}\n'), 'jsonl', s, 1e7, limits), 'label_too_long', 'label');
  await refused(ingestDataset(body('{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n{"text":"c","label":"z"}\n'), 'jsonl', s, 1e7, limits), 'too_many_labels', 'label');
});
