// The stored model archive of a succeeded job, for the routes that serve it whole or a file of it.
import type { BlobStore } from '@makam/shared/blob-store';
import type { JobRecord } from '@makam/shared/job-store';
import { ApiError } from '../errors.ts';

/**
 * The archive's path and its recorded digest and size, or 409 artifact_not_ready (the job has not
 * succeeded; `use` says what then becomes possible) or 404 artifact_missing.
 */
export async function storedArtifact(blobs: Pick<BlobStore, 'artifactPath' | 'exists'>, job: JobRecord, use: string): Promise<{ file: string; sha256: string; size_bytes: number }> {
  if (job.status !== 'succeeded' || !job.artifact) throw new ApiError(409, 'artifact_not_ready', `the job is ${job.status}; ${use} once it has succeeded`, 'id');
  const file = blobs.artifactPath(job.id);
  if (!(await blobs.exists(file))) throw new ApiError(404, 'artifact_missing', 'the model file is missing from the artifact store', 'id');
  return { file, ...job.artifact };
}
