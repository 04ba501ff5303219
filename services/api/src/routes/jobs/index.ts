import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { idempotencyKey } from '../../idempotency.ts';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isJobId } from '@makam/shared/ids';
import { isTerminal } from '@makam/shared/job-state';
import { requestCancel } from '@makam/shared/cancel';
import { ApiError } from '../../errors.ts';
import { awaitReplicas } from '../../replication.ts';
import { errorResponses } from '../../schemas/common.ts';
import { CreateJobBody, EventList, EventsQuery, Job, JobIdParams, JobList, ListJobsQuery, MetricSeries, TrialList } from '../../schemas/jobs.ts';
import { parseModelRoots } from '../../jobs/check-model.ts';
import { storedArtifact } from '../../jobs/artifact.ts';
import { submitJob } from '../../jobs/submit-job.ts';
import { listTrials } from '../../jobs/trials.ts';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const deps = { app, modelRoots: parseModelRoots(app.config.MAKAM_MODEL_ROOTS) };

  app.post(
    '/',
    { schema: { summary: 'Submit a fine-tuning job, or a tune job (an Optuna search whose trials are fine-tuning runs)', body: CreateJobBody, response: { 202: Job, ...errorResponses } } },
    async (request, reply) => {
      const answer = await submitJob(deps, { tenant: request.tenant, body: request.body, idempotencyKey: () => idempotencyKey(request), log: request.log });
      // The request's one log line names the job, rather than a line of its own: each line is a
      // write to the log (bench/api-profile.ts). Bound on the request's own logger, beside the tenant
      // (plugins/auth.ts): a child logger a request was 1.6% of a POST's busy time.
      const job = answer.body as { id?: string; resource_class?: string };
      const log = reply.log as Partial<Pick<Logger, 'setBindings'>>;
      if (answer.status === 202 && log.setBindings) log.setBindings({ jobId: job.id, resourceClass: job.resource_class });
      return reply.code(answer.status).send(answer.body as never);
    },
  );

  app.get('/', { schema: { summary: 'List jobs, newest first', querystring: ListJobsQuery, response: { 200: JobList, ...errorResponses } } }, async (request) => {
    const page = await app.jobs.list(request.tenant, request.query.limit, request.query.after, request.query.kind);
    return { object: 'list' as const, ...page };
  });

  // The record is read by the front door in its one round trip (plugins/auth.ts config.admitRead):
  // the route makes none of its own. A malformed id names no key (the params schema refuses it).
  const readJob = (request: FastifyRequest): string | null => {
    const id = (request.params as { id?: string }).id;
    return id && isJobId(id) ? app.keys.job(id) : null;
  };
  app.get('/:id', { schema: { summary: 'Get a job', params: JobIdParams, response: { 200: Job, ...errorResponses } }, config: { admitRead: readJob } }, async (request) =>
    app.ownedJob(request.tenant, request.params.id, request.admittedRead),
  );

  app.get(
    '/:id/metrics',
    { schema: { summary: "The job's metric series (its latest attempt)", params: JobIdParams, response: { 200: MetricSeries, ...errorResponses } } },
    async (request) => {
      await app.ownedJob(request.tenant, request.params.id);
      return { object: 'list' as const, data: await app.jobs.metrics(request.params.id) };
    },
  );

  app.get(
    '/:id/events',
    { schema: { summary: "The job's event log, oldest first, paged by cursor", params: JobIdParams, querystring: EventsQuery, response: { 200: EventList, ...errorResponses } } },
    async (request) => {
      await app.ownedJob(request.tenant, request.params.id);
      const page = await app.jobs.events(request.params.id, request.query.after, request.query.limit);
      return { object: 'list' as const, data: page.data.map((e) => ({ id: e.id, created_at: e.created_at, type: e.data.type, data: e.data })), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/:id/trials',
    { schema: { summary: "A tune job's trials by number: parameters, state, per-epoch objective and final metrics", params: JobIdParams, response: { 200: TrialList, ...errorResponses } } },
    async (request) => listTrials(app.jobs, await app.ownedJob(request.tenant, request.params.id)),
  );

  app.post(
    '/:id/cancel',
    { schema: { summary: 'Cancel a job: a queued one at once, a running one within seconds', params: JobIdParams, response: { 200: Job, ...errorResponses } } },
    async (request) => {
      const id = request.params.id;
      const job = await app.ownedJob(request.tenant, id);
      if (job.status === 'cancelled' || job.status === 'cancelling') {
        // Maybe the repeat of a cancel answered 503 not_replicated: the first cancel, by whichever
        // API process, was acknowledged before this WAIT's marker, so the WAIT covers it.
        await awaitReplicas(app.config, app.replicaWaits);
        return job;
      }
      if (isTerminal(job.status)) throw new ApiError(409, 'job_finished', `the job has already ${job.status}; only queued and running jobs can be cancelled`, 'id');
      // A running tune job's coordinator sees the cancelling record and cancels its trials.
      await requestCancel(app.jobs, app.redis, app.keys, (job.kind === 'tune' ? app.tuneQueues : app.queues).get(job.resource_class), id);
      await awaitReplicas(app.config, app.replicaWaits);
      return app.ownedJob(request.tenant, id);
    },
  );

  app.get(
    '/:id/artifacts/model',
    {
      schema: {
        summary: "Download the job's model as a .tar.gz (sha256 in the X-Makam-Sha256 header)",
        params: JobIdParams,
        response: { 200: { type: 'string', format: 'binary' } as never, ...errorResponses },
      },
    },
    async (request, reply) => {
      const job = await app.ownedJob(request.tenant, request.params.id);
      const artifact = await storedArtifact(app.blobs, job, 'its model can be downloaded');
      return reply
        .header('content-type', 'application/gzip')
        .header('content-length', String(artifact.size_bytes))
        .header('content-disposition', `attachment; filename="${job.id}-model.tar.gz"`)
        .header('x-makam-sha256', artifact.sha256)
        .header('repr-digest', `sha-256=:${Buffer.from(artifact.sha256, 'hex').toString('base64')}:`)
        .send(app.blobs.read(artifact.file));
    },
  );
};

export default routes;
