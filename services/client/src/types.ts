// The API's wire types, built from the TypeBox schemas that validate its requests and responses,
// so a field the API renames fails the CLI's and the dashboard's typecheck. Type-only imports:
// nothing of the API's runtime reaches the browser bundle.
import type { Static } from 'typebox';
import type { CreateJobBody as CreateJobBodySchema, EventList, Job as JobSchema, JobList as JobListSchema, TrialList as TrialListSchema } from '../../api/src/schemas/jobs.ts';
import type { Dataset as DatasetSchema } from '../../api/src/schemas/datasets.ts';
import type { ErrorResponse } from '../../api/src/schemas/common.ts';

/**
 * The schema's `Type.Unknown()` fields (a job's model, result, study...) as `any`: the API does
 * not type them (yet), and reading them would otherwise need a cast at every use.
 */
type Loose<T> = { [K in keyof T]: unknown extends T[K] ? any : T[K] };

export type Job = Loose<Static<typeof JobSchema>>;
export type JobStatus = Job['status'];
export type JobKind = Job['kind'];
export type JobList = Omit<Static<typeof JobListSchema>, 'data'> & { data: Job[] };
export type Trial = Loose<Static<typeof TrialListSchema>['data'][number]>;
export type TrialList = Omit<Static<typeof TrialListSchema>, 'data'> & { data: Trial[] };
export type Dataset = Static<typeof DatasetSchema>;
export type CreateJobBody = Static<typeof CreateJobBodySchema>;
export type ApiErrorBody = Static<typeof ErrorResponse>['error'];
/** One stored event, as the events list and the event stream send it. */
export type JobEvent = Loose<Static<typeof EventList>['data'][number]>;
