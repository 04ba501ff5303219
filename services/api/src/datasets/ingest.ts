// Turns an uploaded JSONL or CSV body into the normalized dataset the workers read: UTF-8 JSON
// lines of {"text", "label"}, stored under its sha256. Every refusal names the line and the field;
// nothing is stored unless the whole file is valid. A dataset whose first row has no "label" is
// text-only (lines of {"text"}, `labels: []`): an unlabeled_dataset for the masked-LM phase, which
// every row must then match.
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import type { BlobStore } from '@makam/shared/blob-store';
import { ApiError } from '../errors.ts';

export type DatasetFormat = 'jsonl' | 'csv';

export interface IngestResult {
  sha256: string;
  size_bytes: number;
  rows: number;
  labels: string[];
  label_counts: Record<string, number>;
}

/** Bounds on what one dataset may hold; every label travels in every job record, event and report. */
export interface IngestLimits {
  /** Bytes of one text, and of one JSON line as sent (MAKAM_MAX_TEXT_BYTES). */
  maxTextBytes: number;
  /** Characters of one label (MAKAM_MAX_LABEL_CHARS). */
  maxLabelChars: number;
  /** Distinct labels (MAKAM_MAX_LABELS). */
  maxLabels: number;
}

// The keys request bodies refuse anywhere (services/api/src/json-body.ts): a class with one of these
// names could never be given class_weights or focal_alpha, and is a prototype key wherever read.
const RESERVED_LABELS = new Set(['__proto__', 'constructor', 'prototype']);

export const DEFAULT_INGEST_LIMITS: IngestLimits = { maxTextBytes: 1024 * 1024, maxLabelChars: 100, maxLabels: 200 };

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
        decoder.decode(chunk, { stream: true });
        // Newlines counted on the bytes (native search): a JS loop per character cost seconds per MB.
        for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) line++;
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

const lineTooLong = (line: number, maxBytes: number): ApiError =>
  new ApiError(400, 'line_too_long', `line ${line} is longer than the limit of ${maxBytes} bytes (MAKAM_MAX_TEXT_BYTES); shorten its text or split it into several rows`, `line ${line}`);

/**
 * JSON lines, each chunk scanned once: the pieces of a line are kept as a list and only the new
 * chunk is searched for '\n', so the work is linear in the upload whatever its line lengths
 * (rescanning a growing buffer was quadratic: one 16 MB line took 20 s of CPU). A line past
 * `maxLineBytes` is refused as soon as it gets there.
 */
async function* jsonlRows(source: Readable, maxLineBytes: number): AsyncGenerator<{ row: unknown; line: number }> {
  let pieces: Buffer[] = [];
  let pending = 0;
  let line = 0;
  const parseLine = (bytes: Buffer, n: number) => {
    // The upload was checked as UTF-8 when it was received.
    const text = bytes.toString('utf8').replace(/\r$/, '');
    if (text.trim() === '') return undefined;
    try {
      return { row: JSON.parse(text) as unknown, line: n };
    } catch {
      throw new ApiError(400, 'invalid_json', `line ${n} is not valid JSON; each line must be one object like {"text": "...", "label": "..."}`, `line ${n}`);
    }
  };
  for await (const chunk of source as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      line++;
      if (pending + nl - start > maxLineBytes) throw lineTooLong(line, maxLineBytes);
      const bytes = pieces.length === 0 ? chunk.subarray(start, nl) : Buffer.concat([...pieces, chunk.subarray(start, nl)]);
      pieces = [];
      pending = 0;
      start = nl + 1;
      const parsed = parseLine(bytes, line);
      if (parsed) yield parsed;
    }
    if (start < chunk.length) {
      pieces.push(chunk.subarray(start));
      pending += chunk.length - start;
      if (pending > maxLineBytes) throw lineTooLong(line + 1, maxLineBytes);
    }
  }
  line++;
  const parsed = parseLine(Buffer.concat(pieces), line);
  if (parsed) yield parsed;
}

async function* csvRows(source: Readable, maxFieldBytes: number): AsyncGenerator<{ row: unknown; line: number }> {
  const parser = source.pipe(
    parseCsv({
      columns: (header: string[]) => header.map((h) => h.trim().replace(/^\uFEFF/, '')),
      bom: true,
      skip_empty_lines: true,
      relax_column_count: false,
      info: true,
      // A field is never buffered past the text limit (csv-parse counts bytes).
      max_record_size: maxFieldBytes,
    }),
  );
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      yield { row: record, line: info.lines };
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const e = err as { code?: string; lines?: number; message?: string };
    if (e.code === 'CSV_MAX_RECORD_SIZE') {
      throw new ApiError(400, 'line_too_long', `the CSV record at line ${e.lines ?? '?'} is longer than the limit of ${maxFieldBytes} bytes (MAKAM_MAX_TEXT_BYTES); shorten its text or split it into several rows`, `line ${e.lines ?? '?'}`);
    }
    throw new ApiError(400, 'invalid_csv', `the CSV cannot be read${e.lines ? ` at line ${e.lines}` : ''}: ${e.message ?? 'malformed'}; quote fields that hold commas, quotes or line breaks (RFC 4180)`, 'body');
  }
}

function normalize(row: unknown, line: number, limits: IngestLimits, textOnly = false): { text: string; label: string | null } {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new ApiError(400, 'invalid_row', `line ${line} must be an object with "text" and "label"`, `line ${line}`);
  }
  const r = row as Record<string, unknown>;
  if (!Object.hasOwn(r, 'text')) throw new ApiError(400, 'missing_field', `line ${line} has no "text" field; every row needs "text" and "label"`, 'text');
  if (textOnly && Object.hasOwn(r, 'label')) throw new ApiError(400, 'invalid_field', `line ${line} has a "label" and the first row has none: a dataset is labelled in every row or text-only (an unlabeled_dataset); remove the label or label every row`, 'label');
  if (!textOnly && !Object.hasOwn(r, 'label')) throw new ApiError(400, 'missing_field', `line ${line} has no "label" field; every row needs "text" and "label" (a text-only dataset has no label in its first row either)`, 'label');
  if (typeof r.text !== 'string') throw new ApiError(400, 'invalid_field', `line ${line}: "text" must be a string`, 'text');
  if (r.text.trim() === '') throw new ApiError(400, 'empty_text', `line ${line}: "text" is empty; remove the row or give it text`, 'text');
  // A JSON escape like \ud800 without its pair parses but is no Unicode text: the worker could not read it.
  if (!r.text.isWellFormed()) throw new ApiError(400, 'invalid_field', `line ${line}: "text" holds a lone surrogate (an escape like \\ud800 without its pair); send Unicode text`, 'text');
  if (textOnly) return { text: checkText(r.text, line, limits), label: null };
  if (typeof r.label === 'number' && !Number.isFinite(r.label)) throw new ApiError(400, 'invalid_field', `line ${line}: "label" is not a finite number (1e400 parses as Infinity); send the label as a string`, 'label');
  if (typeof r.label === 'string' && !r.label.isWellFormed()) throw new ApiError(400, 'invalid_field', `line ${line}: "label" holds a lone surrogate; send Unicode text`, 'label');
  const label = typeof r.label === 'number' || typeof r.label === 'boolean' ? String(r.label) : r.label;
  if (typeof label !== 'string' || label.trim() === '') throw new ApiError(400, 'invalid_field', `line ${line}: "label" must be a non-empty string`, 'label');
  const text = checkText(r.text, line, limits);
  const normalized = label.trim().normalize('NFC');
  if (normalized.length > limits.maxLabelChars) {
    throw new ApiError(400, 'label_too_long', `line ${line}: "label" is ${normalized.length} characters, more than the limit of ${limits.maxLabelChars} (MAKAM_MAX_LABEL_CHARS); use a short name for the class`, 'label');
  }
  if (RESERVED_LABELS.has(normalized)) {
    throw new ApiError(400, 'invalid_label', `line ${line}: "label" '${normalized}' cannot name a class: labels become keys (label_counts, class_weights, per-class metrics) and request bodies refuse this one; rename the class`, 'label');
  }
  return { text, label: normalized };
}

function checkText(raw: string, line: number, limits: IngestLimits): string {
  const text = raw.normalize('NFC');
  const textBytes = Buffer.byteLength(text);
  if (textBytes > limits.maxTextBytes) {
    throw new ApiError(400, 'text_too_long', `line ${line}: "text" is ${textBytes} bytes, more than the limit of ${limits.maxTextBytes} (MAKAM_MAX_TEXT_BYTES); shorten it or split it into several rows`, 'text');
  }
  return text;
}

/** Receives the raw upload into a temporary file: size-limited, checked as UTF-8, hashed. */
export async function receiveRaw(body: Readable, store: BlobStore, maxBytes: number): Promise<{ tempPath: string; size: number; sha256: string }> {
  return store.writeTemp(body, byteLimit(maxBytes), utf8Check());
}

/**
 * Parses and validates a received upload and stores the normalized dataset under its sha256.
 * `beforeCommit` may refuse (a quota) after validation and before anything is stored; once it has
 * succeeded, a failure to store is the caller's to undo.
 */
export async function ingestRaw(
  rawPath: string,
  format: DatasetFormat,
  store: BlobStore,
  beforeCommit?: (result: IngestResult) => Promise<void>,
  limits: IngestLimits = DEFAULT_INGEST_LIMITS,
): Promise<IngestResult> {
  const normalizedPath = await store.tempPath();
  try {
    const out = createWriteStream(normalizedPath);
    const counts = new Map<string, number>();
    let rows = 0;
    let textOnly: boolean | undefined; // decided by the first row
    const source = createReadStream(rawPath);
    try {
      const rowsOf = format === 'csv' ? csvRows(source, limits.maxTextBytes) : jsonlRows(source, limits.maxTextBytes);
      for await (const { row, line } of rowsOf) {
        textOnly ??= typeof row === 'object' && row !== null && !Array.isArray(row) && !Object.hasOwn(row, 'label');
        const { text, label } = normalize(row, line, limits, textOnly);
        rows++;
        if (label === null) {
          if (!out.write(JSON.stringify({ text }) + '\n')) await once(out, 'drain');
          continue;
        }
        counts.set(label, (counts.get(label) ?? 0) + 1);
        if (counts.size > limits.maxLabels) {
          throw new ApiError(400, 'too_many_labels', `line ${line}: the dataset has more than ${limits.maxLabels} labels, the limit (MAKAM_MAX_LABELS); merge rare classes or split the task`, 'label');
        }
        if (!out.write(JSON.stringify({ text, label }) + '\n')) await once(out, 'drain');
      }
    } finally {
      out.end();
      await once(out, 'close');
    }
    if (rows === 0) throw new ApiError(400, 'empty_dataset', 'the dataset has no rows; send JSON lines or CSV rows with "text" and "label"', 'body');
    if (!textOnly && counts.size < 2) throw new ApiError(400, 'too_few_labels', `the dataset has only one label (${[...counts.keys()][0]}); a classifier needs at least two`, 'label');
    const stored = await store.writeTemp(createReadStream(normalizedPath));
    const labels = [...counts.keys()].sort();
    const result = { sha256: stored.sha256, size_bytes: stored.size, rows, labels, label_counts: Object.fromEntries(labels.map((l) => [l, counts.get(l)!])) };
    try {
      await beforeCommit?.(result);
    } catch (err) {
      await store.remove(stored.tempPath);
      throw err;
    }
    // Written even where the blob exists: a delete may be moving the old copy aside right now,
    // and the content under a sha256 is the same whoever writes it.
    try {
      await store.commit(stored.tempPath, store.datasetPath(stored.sha256));
    } catch (err) {
      await store.remove(stored.tempPath);
      throw err;
    }
    return result;
  } finally {
    await store.remove(normalizedPath);
  }
}

/** Validates and stores an upload; returns what the dataset record needs. */
export async function ingestDataset(body: Readable, format: DatasetFormat, store: BlobStore, maxBytes: number, limits: IngestLimits = DEFAULT_INGEST_LIMITS): Promise<IngestResult> {
  const raw = await receiveRaw(body, store, maxBytes);
  try {
    return await ingestRaw(raw.tempPath, format, store, undefined, limits);
  } finally {
    await store.remove(raw.tempPath);
  }
}
