// Moves files between the artifact store and one run's worker. Up go the datasets the worker lacks,
// the checkpoint a retry resumes from and an ensemble's members' models; down come the run's checkpoints and its model, kept only
// when their sha256 and size match what the worker announced. One pair of functions serves every
// kind of file; what differs per kind (the RPC, the header, the store path) is looked up here.
import { createReadStream } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { isGrpcError } from './grpc/adapter.ts';
import type { BlobStore } from '@makam/shared/blob-store';
import type { Logger } from '@makam/shared/logger';
import type { WorkerClient } from './grpc/worker-client.ts';
import { JobFailure, RetryableFailure } from './failures.ts';

const UNARY_MS = 30_000;
const TRANSFER_MS = 30 * 60_000;
const CHUNK = 1024 * 1024;

/** One run's side of its transfers. */
export interface Transfers {
  client: WorkerClient;
  blobs: BlobStore;
  /** The run's id on the worker, which is the job's id. */
  runId: string;
  log: Logger;
  /** Aborting cuts a transfer short (the dispatcher is closing). */
  signal: AbortSignal;
}

/** A checkpoint as the job record keeps it. */
export interface Checkpoint {
  epoch: number;
  step: number;
  sha256: string;
  size_bytes: number;
}

/** What goes up to the worker: a dataset by its sha256, the checkpoint to resume from, or a finished job's model (an ensemble member). */
export type Upload = { kind: 'dataset'; sha256: string } | { kind: 'checkpoint'; checkpoint: Checkpoint } | { kind: 'artifact'; jobId: string; sha256: string; sizeBytes: number };

/** What comes down from the worker: the run's latest checkpoint, or its model. */
export type Download = { kind: 'checkpoint'; minEpoch: number } | { kind: 'artifact' };

/**
 * Sends a file from the artifact store to the worker; a dataset the worker already holds is not
 * sent again. The worker refuses a file over its size limit with INVALID_ARGUMENT: the same bytes
 * would be refused on every attempt, so the job fails at once (`dataset_too_large`,
 * `checkpoint_too_large`). A full disk (RESOURCE_EXHAUSTED) may clear, and is retried.
 */
export async function upload(t: Transfers, file: Upload): Promise<void> {
  const options = { timeoutMs: TRANSFER_MS, signal: t.signal };
  const refused = (err: unknown): never => {
    if (isGrpcError(err, GrpcStatus.INVALID_ARGUMENT)) throw new JobFailure(`${file.kind}_too_large`, err.details, { cause: err });
    throw err;
  };
  if (file.kind === 'artifact') {
    const { sha256, jobId } = file;
    if ((await t.client.hasArtifact({ sha256 }, { timeoutMs: UNARY_MS })).present) return;
    await t.client.uploadArtifact(parts({ sha256, sizeBytes: BigInt(file.sizeBytes) }, t.blobs.artifactPath(jobId)), options).catch(refused);
    t.log.info({ sha256, member: jobId }, 'member model uploaded to worker for an ensemble');
  } else if (file.kind === 'dataset') {
    const { sha256 } = file;
    const { present } = await t.client.hasDataset({ sha256 }, { timeoutMs: UNARY_MS });
    if (present) return;
    const path = t.blobs.datasetPath(sha256);
    const sizeBytes = BigInt(await t.blobs.size(path));
    await t.client.uploadDataset(parts({ sha256, sizeBytes }, path), options).catch(refused);
    t.log.info({ sha256 }, 'dataset uploaded to worker');
  } else {
    const { epoch, step, sha256, size_bytes } = file.checkpoint;
    await t.client.uploadCheckpoint(parts({ epoch, step, sha256, sizeBytes: BigInt(size_bytes) }, t.blobs.checkpointPath(t.runId)), options).catch(refused);
    t.log.info({ epoch, sha256 }, 'checkpoint uploaded to worker for resume');
  }
}

/** A client-streaming upload: the header, then the file in chunks. */
async function* parts<H>(header: H, path: string) {
  yield { part: { case: 'header' as const, value: header } };
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) yield { part: { case: 'chunk' as const, value: chunk as Buffer } };
}

/** What the worker announced of a file it sends. epoch and step are a checkpoint's (0 for a model). */
interface Announced {
  sha256: string;
  size: number;
  epoch: number;
  step: number;
}

/**
 * Pulls a file of the run into the artifact store (the job's checkpoint or model path) and returns
 * it as stored. Bytes that do not match the worker's header (sha256 and size; for a checkpoint, an
 * epoch no older than `minEpoch`) are thrown away and fail with a RetryableFailure,
 * `checkpoint_corrupt` or `artifact_corrupt`.
 */
export async function download(t: Transfers, file: Download): Promise<Checkpoint> {
  const options = { timeoutMs: TRANSFER_MS, signal: t.signal };
  const stream = file.kind === 'artifact' ? t.client.fetchArtifact({ runId: t.runId }, options) : t.client.fetchCheckpoint({ runId: t.runId }, options);
  let header: Announced | null = null;
  async function* bytes() {
    for await (const msg of stream) {
      const part = msg.part;
      if (part.case === 'header') {
        const v = part.value;
        header = { sha256: v.sha256, size: Number(v.sizeBytes), epoch: 'epoch' in v ? v.epoch : 0, step: 'step' in v ? v.step : 0 };
      } else if (part.case === 'chunk') yield part.value;
    }
  }
  const written = await t.blobs.writeTemp(bytes());
  const h = header as Announced | null;
  const minEpoch = file.kind === 'checkpoint' ? file.minEpoch : 0;
  if (!h || h.sha256 !== written.sha256 || h.size !== written.size || h.epoch < minEpoch) {
    await t.blobs.remove(written.tempPath);
    const announced = h ? `sha256 ${h.sha256}, ${h.size} bytes${file.kind === 'checkpoint' ? `, epoch ${h.epoch} (wanted ${minEpoch} or later)` : ''}` : 'no header';
    throw new RetryableFailure(`${file.kind}_corrupt`, `${file.kind} did not arrive whole: the worker announced ${announced}, received sha256 ${written.sha256}, ${written.size} bytes`);
  }
  await t.blobs.commit(written.tempPath, file.kind === 'artifact' ? t.blobs.artifactPath(t.runId) : t.blobs.checkpointPath(t.runId));
  return { epoch: h.epoch, step: h.step, sha256: h.sha256, size_bytes: h.size };
}
