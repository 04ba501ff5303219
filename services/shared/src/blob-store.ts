// Datasets and model artifacts on a directory (shared by the API and the dispatchers).
// Writes go to a temporary file first and are renamed into place, so a crash never leaves a
// half-written file under a final name.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';

export class BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Ids and hashes are validated by callers; this second check keeps every path inside root. */
  private inside(...parts: string[]): string {
    const p = path.resolve(this.root, ...parts);
    if (!p.startsWith(this.root + path.sep)) throw new Error(`path escapes the store: ${parts.join('/')}`);
    return p;
  }

  datasetPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('bad sha256');
    return this.inside('datasets', `${sha256}.jsonl`);
  }

  artifactPath(jobId: string): string {
    return this.inside('artifacts', jobId, 'model.tar.gz');
  }

  checkpointPath(jobId: string): string {
    return this.inside('artifacts', jobId, 'checkpoint.tar');
  }

  async tempPath(): Promise<string> {
    const dir = this.inside('tmp');
    await mkdir(dir, { recursive: true });
    return path.join(dir, randomUUID());
  }

  /** Moves a finished temporary file to its final name. */
  async commit(tempPath: string, finalPath: string): Promise<void> {
    await mkdir(path.dirname(finalPath), { recursive: true });
    await rename(tempPath, finalPath);
  }

  async exists(p: string): Promise<boolean> {
    try {
      await stat(p);
      return true;
    } catch {
      return false;
    }
  }

  async size(p: string): Promise<number> {
    return (await stat(p)).size;
  }

  /** Writes `source` to a temporary file, returning its path, size and sha256. */
  async writeTemp(source: Readable | AsyncIterable<Uint8Array>, ...checks: Transform[]): Promise<{ tempPath: string; size: number; sha256: string }> {
    const tempPath = await this.tempPath();
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline([source, ...checks, tap, createWriteStream(tempPath)] as NodeJS.ReadWriteStream[]);
    } catch (err) {
      await rm(tempPath, { force: true });
      throw err;
    }
    return { tempPath, size, sha256: hash.digest('hex') };
  }

  read(p: string): Readable {
    return createReadStream(p);
  }

  /** Makes `to` the same file as `from` (a hard link; a copy where links cannot be made). */
  async link(from: string, to: string): Promise<void> {
    await mkdir(path.dirname(to), { recursive: true });
    await rm(to, { force: true });
    await link(from, to).catch(() => copyFile(from, to));
  }

  async remove(p: string): Promise<void> {
    await rm(p, { force: true });
  }
}
