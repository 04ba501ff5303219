// Turns an uploaded JSONL or CSV body into the normalized dataset the workers read: UTF-8 JSON
// lines of {"text", "label"}, stored under its sha256. Every refusal names the line and the field;
// nothing is stored unless the whole file is valid.
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import type { BlobStore } from '@makam/shared';
import { ApiError } from '../errors.ts';

export type DatasetFormat = 'jsonl' | 'csv';

export interface IngestResult {
  sha256: string;
  size_bytes: number;
  rows: number;
  labels: string[];
  label_counts: Record<string, number>;
}

const MAX_LABELS = 1000;

/**
 * Counts bytes; past `limit` it keeps reading but discards, and fails at the end with 413, so the
 * client gets an answer instead of a reset connection and nothing past the limit is stored.
 */
function byteLimit(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      cb(null, seen > limit ? undefined : chunk);
    },
    flush(cb) {
      cb(seen > limit ? tooLarge(limit) : null);
    },
  });
}

export const tooLarge = (limit: number): ApiError =>
  new ApiError(413, 'dataset_too_large', `the dataset is larger than the limit of ${limit} bytes; split it or ask for a higher MAKAM_MAX_DATASET_BYTES`, 'body');

/** Refuses bytes that are not UTF-8, naming the line where they are. */
function utf8Check(): Transform {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        const text = decoder.decode(chunk, { stream: true });
        for (const ch of text) if (ch === '\n') line++;
        cb(null, chunk);
      } catch {
        cb(new ApiError(400, 'invalid_encoding', `the dataset is not valid UTF-8 (near line ${line}); save it as UTF-8`, 'body'));
      }
    },
    flush(cb) {
      try {
        decoder.decode();
        cb();
      } catch {
        cb(new ApiError(400, 'invalid_encoding', 'the dataset ends in the middle of a UTF-8 character; save it as UTF-8', 'body'));
      }
    },
  });
}

async function* jsonlRows(source: Readable): AsyncGenerator<{ row: unknown; line: number }> {
  let buffered = '';
  let line = 0;
  const decoder = new TextDecoder('utf-8');
  const parseLine = (text: string, n: number) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ApiError(400, 'invalid_json', `line ${n} is not valid JSON; each line must be one object like {"text": "...", "label": "..."}`, `line ${n}`);
    }
  };
  for await (const chunk of source) {
    buffered += decoder.decode(chunk as Buffer, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl).replace(/\r$/, '');
      buffered = buffered.slice(nl + 1);
      line++;
      if (text.trim() !== '') yield { row: parseLine(text, line), line };
    }
  }
  buffered += decoder.decode();
  line++;
  if (buffered.trim() !== '') yield { row: parseLine(buffered.replace(/\r$/, ''), line), line };
}

async function* csvRows(source: Readable): AsyncGenerator<{ row: unknown; line: number }> {
  const parser = source.pipe(
    parseCsv({ columns: (header: string[]) => header.map((h) => h.trim().replace(/^\uFEFF/, '')), bom: true, skip_empty_lines: true, relax_column_count: false, info: true }),
  );
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      yield { row: record, line: info.lines };
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const e = err as { code?: string; lines?: number; message?: string };
    throw new ApiError(400, 'invalid_csv', `the CSV cannot be read${e.lines ? ` at line ${e.lines}` : ''}: ${e.message ?? 'malformed'}; quote fields that hold commas, quotes or line breaks (RFC 4180)`, 'body');
  }
}

function normalize(row: unknown, line: number): { text: string; label: string } {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new ApiError(400, 'invalid_row', `line ${line} must be an object with "text" and "label"`, `line ${line}`);
  }
  const r = row as Record<string, unknown>;
  if (!('text' in r)) throw new ApiError(400, 'missing_field', `line ${line} has no "text" field; every row needs "text" and "label"`, 'text');
  if (!('label' in r)) throw new ApiError(400, 'missing_field', `line ${line} has no "label" field; every row needs "text" and "label"`, 'label');
  if (typeof r.text !== 'string') throw new ApiError(400, 'invalid_field', `line ${line}: "text" must be a string`, 'text');
  if (r.text.trim() === '') throw new ApiError(400, 'empty_text', `line ${line}: "text" is empty; remove the row or give it text`, 'text');
  const label = typeof r.label === 'number' || typeof r.label === 'boolean' ? String(r.label) : r.label;
  if (typeof label !== 'string' || label.trim() === '') throw new ApiError(400, 'invalid_field', `line ${line}: "label" must be a non-empty string`, 'label');
  return { text: r.text.normalize('NFC'), label: label.trim().normalize('NFC') };
}

/** Receives the raw upload into a temporary file: size-limited, checked as UTF-8, hashed. */
export async function receiveRaw(body: Readable, store: BlobStore, maxBytes: number): Promise<{ tempPath: string; size: number; sha256: string }> {
  return store.writeTemp(body, byteLimit(maxBytes), utf8Check());
}

/**
 * Parses and validates a received upload and stores the normalized dataset under its sha256.
 * `beforeCommit` may refuse (a quota) after validation and before anything is stored.
 */
export async function ingestRaw(rawPath: string, format: DatasetFormat, store: BlobStore, beforeCommit?: (result: IngestResult) => Promise<void>): Promise<IngestResult> {
  const normalizedPath = await store.tempPath();
  try {
    const out = createWriteStream(normalizedPath);
    const counts = new Map<string, number>();
    let rows = 0;
    const source = createReadStream(rawPath);
    try {
      for await (const { row, line } of format === 'csv' ? csvRows(source) : jsonlRows(source)) {
        const { text, label } = normalize(row, line);
        counts.set(label, (counts.get(label) ?? 0) + 1);
        if (counts.size > MAX_LABELS) throw new ApiError(400, 'too_many_labels', `the dataset has more than ${MAX_LABELS} labels`, 'label');
        rows++;
        if (!out.write(JSON.stringify({ text, label }) + '\n')) await once(out, 'drain');
      }
    } finally {
      out.end();
      await once(out, 'close');
    }
    if (rows === 0) throw new ApiError(400, 'empty_dataset', 'the dataset has no rows; send JSON lines or CSV rows with "text" and "label"', 'body');
    if (counts.size < 2) throw new ApiError(400, 'too_few_labels', `the dataset has only one label (${[...counts.keys()][0]}); a classifier needs at least two`, 'label');
    const stored = await store.writeTemp(createReadStream(normalizedPath));
    const labels = [...counts.keys()].sort();
    const result = { sha256: stored.sha256, size_bytes: stored.size, rows, labels, label_counts: Object.fromEntries(labels.map((l) => [l, counts.get(l)!])) };
    try {
      await beforeCommit?.(result);
    } catch (err) {
      await store.remove(stored.tempPath);
      throw err;
    }
    const finalPath = store.datasetPath(stored.sha256);
    if (await store.exists(finalPath)) await store.remove(stored.tempPath);
    else await store.commit(stored.tempPath, finalPath);
    return result;
  } finally {
    await store.remove(normalizedPath);
  }
}

/** Validates and stores an upload; returns what the dataset record needs. */
export async function ingestDataset(body: Readable, format: DatasetFormat, store: BlobStore, maxBytes: number): Promise<IngestResult> {
  const raw = await receiveRaw(body, store, maxBytes);
  try {
    return await ingestRaw(raw.tempPath, format, store);
  } finally {
    await store.remove(raw.tempPath);
  }
}
