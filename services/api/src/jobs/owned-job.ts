// The one guard for "this tenant owns this job", used by every route that takes a job id.
import fp from 'fastify-plugin';
import { decodeJobFields, type JobRecord, type JobStore } from '@makam/shared/job-store';
import { notFound } from '../errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The tenant's job with this id; a missing job and another tenant's answer the same 404.
     * `read`: its hash as the front door already read it (config.admitRead), else it is read now.
     */
    ownedJob(tenant: string, id: string, read?: string[] | null): Promise<JobRecord>;
  }
}

/** Another tenant's job answers exactly as a missing one does, so ids cannot be probed. */
export async function ownedJob(jobs: Pick<JobStore, 'get'>, tenant: string, id: string, read?: string[] | null): Promise<JobRecord> {
  const job = read ? decodeJobFields(read) : await jobs.get(id);
  if (!job || job.tenant !== tenant) throw notFound('job', id);
  return job;
}

export default fp(
  async (app) => {
    app.decorate('ownedJob', (tenant: string, id: string, read?: string[] | null) => ownedJob(app.jobs, tenant, id, read));
  },
  { name: 'owned-job' },
);
