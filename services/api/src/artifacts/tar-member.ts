// Reads one small file out of a model archive (.tar.gz) without unpacking the rest: the archive's
// files are sorted by name, so README.md and metrics.json come before the weights and the read
// stops there, even for a model of gigabytes.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

const BLOCK = 512;
/** The largest pax or GNU long-name header read (a path is far shorter). */
const MAX_HEADER_BYTES = 64 * 1024;

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
}

/** The pax `path` record of an extended header, if any. */
function paxPath(body: Buffer): string | null {
  for (const m of body.toString('utf8').matchAll(/^\d+ path=(.*)$/gm)) return m[1]!;
  return null;
}

/**
 * Member `name` of the gzipped tar at `file` as a stream of its bytes (and its size), or null when
 * it is absent. Nothing is held in memory but a chunk: a member may be as large as its labels made
 * it (a model card of huge labels is megabytes), and it streams out as it is read.
 */
export async function openTarMember(file: string, name: string): Promise<{ size: number; stream: Readable } | null> {
  const source = createReadStream(file);
  const gunzip = createGunzip();
  source.pipe(gunzip);
  const close = () => {
    source.destroy();
    gunzip.destroy();
  };
  let buffer: Buffer = Buffer.alloc(0);
  let longName: string | null = null;
  const chunks = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const need = async (n: number): Promise<boolean> => {
    while (buffer.length < n) {
      const next = await chunks.next();
      if (next.done) return false;
      buffer = buffer.length === 0 ? next.value : Buffer.concat([buffer, next.value]);
    }
    return true;
  };
  try {
    for (;;) {
      if (!(await need(BLOCK))) return close(), null;
      const header = buffer.subarray(0, BLOCK);
      if (header.every((b) => b === 0)) return close(), null; // end of archive
      const size = parseInt(field(header, 124, 12).trim() || '0', 8);
      const type = String.fromCharCode(header[156]!);
      const prefix = field(header, 345, 155);
      const entryName = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      longName = null;
      buffer = buffer.subarray(BLOCK);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if ((type === '0' || type === '\0') && entryName.replace(/^\.\//, '') === name) {
        async function* body(): AsyncGenerator<Buffer> {
          try {
            let left = size;
            while (left > 0) {
              if (buffer.length === 0 && !(await need(1))) throw new Error(`the archive ends inside ${name}`);
              const part = buffer.subarray(0, Math.min(left, buffer.length));
              buffer = buffer.subarray(part.length);
              left -= part.length;
              yield part;
            }
          } finally {
            close();
          }
        }
        return { size, stream: Readable.from(body()) };
      }
      if (type === 'x' || type === 'L') {
        // Extended headers name the next member; they are small (a path), so bound what is kept.
        if (size > MAX_HEADER_BYTES || !(await need(padded))) return close(), null;
        const ext = Buffer.from(buffer.subarray(0, size));
        longName = type === 'L' ? field(ext, 0, size) : paxPath(ext);
        buffer = buffer.subarray(padded);
        continue;
      }
      // Skip the body without keeping it.
      let skip = padded;
      while (skip > 0) {
        if (buffer.length === 0 && !(await need(1))) return close(), null;
        const n = Math.min(skip, buffer.length);
        buffer = buffer.subarray(n);
        skip -= n;
      }
    }
  } catch (err) {
    close();
    throw err;
  }
}
