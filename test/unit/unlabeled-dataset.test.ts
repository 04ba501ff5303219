// Text-only datasets (issue 13): rows without labels are an unlabeled_dataset for the masked-LM phase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BlobStore } from '@makam/shared/blob-store';
import { ingestDataset } from '../../services/api/src/datasets/ingest.ts';
import { ApiError } from '../../services/api/src/errors.ts';

const store = async () => new BlobStore(await mkdtemp(path.join(tmpdir(), 'makam-unlabeled-')));
const body = (s: string) => Readable.from([Buffer.from(s)]);

test('rows with only "text" make a text-only dataset: labels [], lines of {"text"}', async () => {
  const s = await store();
  const r = await ingestDataset(body('{"text":"gurbet yolu"}\n{"text":"gitar sesi"}\n'), 'jsonl', s, 1e6);
  assert.equal(r.rows, 2);
  assert.deepEqual(r.labels, []);
  assert.deepEqual(r.label_counts, {});
  const stored = (await readFile(s.datasetPath(r.sha256), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(stored, [{ text: 'gurbet yolu' }, { text: 'gitar sesi' }]);
  const csv = await ingestDataset(body('text\r\ngurbet yolu\r\ngitar sesi\r\n'), 'csv', s, 1e6);
  assert.equal(csv.sha256, r.sha256);
});

test('a dataset is labelled in every row or in none, and the refusal names the line and field', async () => {
  const s = await store();
  await assert.rejects(ingestDataset(body('{"text":"a"}\n{"text":"b","label":"x"}\n'), 'jsonl', s, 1e6), (err: unknown) => {
    assert.ok(err instanceof ApiError);
    assert.equal(err.param, 'label');
    assert.match(err.message, /line 2 has a "label" and the first row has none/);
    return true;
  });
  await assert.rejects(ingestDataset(body('{"text":"a","label":"x"}\n{"text":"b"}\n'), 'jsonl', s, 1e6), (err: unknown) => err instanceof ApiError && err.code === 'missing_field' && err.param === 'label');
  await assert.rejects(ingestDataset(body('{"text":""}\n'), 'jsonl', s, 1e6), (err: unknown) => err instanceof ApiError && err.code === 'empty_text');
});
