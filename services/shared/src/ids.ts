import { monotonicFactory } from 'ulid';

// ulid's own PRNG asks the system for one byte per character (16 calls an id); the same bytes
// drawn from a refilled pool cost one call in 4096 (a POST's id was 3% of its busy time). Web
// Crypto's global, not node:crypto: the dashboard's browser build imports this module too.
const pool = new Uint8Array(4096);
let next = pool.length;
const prng = (): number => {
  if (next === pool.length) crypto.getRandomValues(pool), (next = 0);
  return pool[next++]! / 256;
};

const ulid = monotonicFactory(prng);

/** New ids sort by creation time, so Redis lexicographic ranges page newest-first without ties. */
export const newJobId = (): string => `job_${ulid().toLowerCase()}`;
export const newDatasetId = (): string => `ds_${ulid().toLowerCase()}`;

export const JOB_ID_PATTERN = '^job_[0-9a-hjkmnp-tv-z]{26}$';
export const DATASET_ID_PATTERN = '^ds_[0-9a-hjkmnp-tv-z]{26}$';
const jobIdRe = new RegExp(JOB_ID_PATTERN);
const datasetIdRe = new RegExp(DATASET_ID_PATTERN);
export const isJobId = (s: string): boolean => jobIdRe.test(s);
export const isDatasetId = (s: string): boolean => datasetIdRe.test(s);
