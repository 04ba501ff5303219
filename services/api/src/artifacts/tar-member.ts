// Reads one small file out of a model archive (.tar.gz) without unpacking the rest: the archive's
// files are sorted by name, so README.md and metrics.json come before the weights and the read
// stops there, even for a model of gigabytes.
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';

const BLOCK = 512;

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
 * The bytes of member `name` of the gzipped tar at `file`, or null when it is absent.
 * Throws when the member is larger than `maxBytes`.
 */
export async function readTarMember(file: string, name: string, maxBytes: number): Promise<Buffer | null> {
  const source = createReadStream(file);
  const gunzip = createGunzip();
  source.pipe(gunzip);
  let buffer = Buffer.alloc(0);
  let longName: string | null = null;
  try {
    const chunks = gunzip[Symbol.asyncIterator]();
    const need = async (n: number): Promise<boolean> => {
      while (buffer.length < n) {
        const next = await chunks.next();
        if (next.done) return false;
        buffer = Buffer.concat([buffer, next.value as Buffer]);
      }
      return true;
    };
    for (;;) {
      if (!(await need(BLOCK))) return null;
      const header = buffer.subarray(0, BLOCK);
      if (header.every((b) => b === 0)) return null; // end of archive
      const size = parseInt(field(header, 124, 12).trim() || '0', 8);
      const type = String.fromCharCode(header[156]!);
      const prefix = field(header, 345, 155);
      const entryName = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      longName = null;
      buffer = buffer.subarray(BLOCK);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      const wanted = (type === '0' || type === '\0') && entryName.replace(/^\.\//, '') === name;
      if (wanted && size > maxBytes) throw new Error(`${name} is ${size} bytes, more than ${maxBytes}`);
      if (wanted || type === 'x' || type === 'L') {
        if (!(await need(padded))) return null;
        const body = Buffer.from(buffer.subarray(0, size));
        if (wanted) return body;
        longName = type === 'L' ? field(body, 0, size) : paxPath(body);
        buffer = buffer.subarray(padded);
        continue;
      }
      // Skip the body without keeping it.
      let skip = padded;
      while (skip > 0) {
        if (buffer.length === 0 && !(await need(1))) return null;
        const n = Math.min(skip, buffer.length);
        buffer = buffer.subarray(n);
        skip -= n;
      }
    }
  } finally {
    source.destroy();
    gunzip.destroy();
  }
}
