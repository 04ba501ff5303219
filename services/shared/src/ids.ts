import { monotonicFactory } from 'ulid';

const ulid = monotonicFactory();

/** New ids sort by creation time, so Redis lexicographic ranges page newest-first without ties. */
export const newJobId = (): string => `job_${ulid().toLowerCase()}`;
export const newDatasetId = (): string => `ds_${ulid().toLowerCase()}`;

export const JOB_ID_PATTERN = '^job_[0-9a-hjkmnp-tv-z]{26}$';
export const DATASET_ID_PATTERN = '^ds_[0-9a-hjkmnp-tv-z]{26}$';
const jobIdRe = new RegExp(JOB_ID_PATTERN);
const datasetIdRe = new RegExp(DATASET_ID_PATTERN);
export const isJobId = (s: string): boolean => jobIdRe.test(s);
export const isDatasetId = (s: string): boolean => datasetIdRe.test(s);
