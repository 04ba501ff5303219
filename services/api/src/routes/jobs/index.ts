import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { idempotencyKey, withIdempotency } from '../../idempotency.ts';
import { JobTooLargeError, ModelConfigError, PlacementError, appliesTo, defaultsFor, estimateMemory, fingerprintOf, isTerminal, misapplied, newJobId, objectiveValue, place, queuedJob, requestCancel, trainJobOptions, tuneJobOptions, type DatasetRecord, type JobRecord, type Search } from '@makam/shared';
import { ApiError, notFound } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';
import { CreateJobBody, EventList, EventsQuery, Job, JobIdParams, JobList, ListJobsQuery, MetricSeries, TrialList } from '../../schemas/jobs.ts';
import { checkHyperparameters } from '../../jobs/check-hyperparameters.ts';
import { checkModel, parseModelRoots } from '../../jobs/check-model.ts';
import { checkSearch, largestCorner } from '../../jobs/check-search.ts';

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const modelRoots = parseModelRoots(app.config.MAKAM_MODEL_ROOTS);
  // Another tenant's job answers exactly as a missing one does.
  const loadJob = async (request: FastifyRequest, id: string): Promise<JobRecord> => {
    const job = await app.jobs.get(id);
    if (!job || job.tenant !== request.tenant) throw notFound('job', id);
    return job;
  };

  app.post(
    '/',
    { schema: { summary: 'Submit a fine-tuning job, or a tune job (an Optuna search whose trials are fine-tuning runs)', body: CreateJobBody, response: { 202: Job, ...errorResponses } } },
    async (request, reply) => {
      const body = request.body;
      const kind = body.kind;
      if (kind === 'tune' && !body.search) throw new ApiError(400, 'invalid_request', "a tune job needs 'search': the space, objective and trials", 'search');
      if (kind === 'finetune' && body.search) throw new ApiError(400, 'invalid_request', "'search' belongs to tune jobs; set kind to 'tune' or drop search", 'search');
      const family = body.model.family;
      const { name, config, tokenizer } = body.model;
      if (family === 'encoder' || family === 'decoder') {
        if (Boolean(name) === Boolean(config)) {
          throw new ApiError(400, 'invalid_request', "give exactly one of 'model.name' (a Hugging Face id or worker path) and 'model.config' (an architecture to train from scratch)", 'model');
        }
        if (tokenizer && !config) throw new ApiError(400, 'invalid_request', "'model.tokenizer' trains a tokenizer for a 'model.config' model; a named model brings its own", 'model.tokenizer');
        checkModel(body.model, modelRoots);
      } else if (name || config || tokenizer) {
        const field = name ? 'name' : config ? 'config' : 'tokenizer';
        throw new ApiError(400, 'invalid_request', `family '${family}' takes no 'model.${field}': its ${family === 'scratch' ? 'architecture and tokenizer are hyperparameters (layers, heads, d_model, ff_dim, vocab_size, ...)' : 'features are hyperparameters (word_ngram_max, char_ngram_min, ...)'}`, `model.${field}`);
      }
      const given = (body.hyperparameters ?? {}) as Record<string, unknown>;
      const wrong = misapplied(given, family);
      if (wrong) {
        throw new ApiError(400, 'invalid_request', `hyperparameter '${wrong.name}' applies to ${wrong.families.join(', ')}, not to family '${family}'`, `hyperparameters.${wrong.name}`);
      }
      const hyperparameters = { ...defaultsFor(family), ...given };
      checkHyperparameters(family, hyperparameters);
      let search: Search | undefined;
      if (body.search) {
        search = checkSearch(family, body.search, given);
        // The best checkpoint of each trial is the one its objective rates best.
        if (appliesTo('metric_for_best_model', family) && given.metric_for_best_model === undefined) hyperparameters.metric_for_best_model = search.objective.metric;
        for (const name of Object.keys(search.space)) delete hyperparameters[name];
      }

      const datasets: Record<string, DatasetRecord> = {};
      for (const param of ['dataset', 'validation_dataset', 'test_dataset'] as const) {
        const id = body[param];
        if (!id) continue;
        const ds = await app.datasets.get(id);
        if (!ds || ds.tenant !== request.tenant) throw new ApiError(400, 'dataset_not_found', `no dataset with id ${id}; upload it with POST /v1/datasets first`, param);
        datasets[param] = ds;
      }
      const train = datasets.dataset!;
      for (const param of ['validation_dataset', 'test_dataset'] as const) {
        const unseen = datasets[param]?.labels.filter((l) => !train.labels.includes(l)) ?? [];
        if (unseen.length > 0) throw new ApiError(400, 'label_not_in_training', `${param} labels missing from the training dataset: ${unseen.join(', ')}`, param);
      }
      for (const param of ['focal_alpha', 'class_weights'] as const) {
        const weights = hyperparameters[param];
        if (weights && typeof weights === 'object') {
          const unknown = Object.keys(weights).filter((l) => !train.labels.includes(l));
          if (unknown.length) throw new ApiError(400, 'invalid_request', `${param} names labels the dataset does not have: ${unknown.join(', ')}; its labels: ${train.labels.join(', ')}`, `hyperparameters.${param}`);
        }
      }

      let placement;
      try {
        const input = { family, model: body.model, hyperparameters, labels: train.labels.length, rows: train.rows, datasetBytes: train.size_bytes };
        // A tune job is placed where its largest trial fits.
        if (search) input.hyperparameters = largestCorner(search.space, { ...defaultsFor(family), ...hyperparameters }, (hp) => estimateMemory({ ...input, hyperparameters: hp, cuda: true }).total_bytes);
        placement = place(input, app.resourceClasses, body.resource_class);
      } catch (err) {
        if (err instanceof PlacementError) throw new ApiError(400, 'does_not_fit', err.message, body.resource_class ? 'resource_class' : 'hyperparameters');
        if (err instanceof ModelConfigError) throw new ApiError(400, 'invalid_model_config', err.message, err.param);
        throw err;
      }
      const resourceClass = placement.resource_class;
      const queue = (search ? app.tuneQueues : app.queues).get(resourceClass)!;
      const answer = await withIdempotency(app, request.tenant, 'jobs', idempotencyKey(request), fingerprintOf(body), async () => {
        const limit = app.config.MAKAM_TENANT_MAX_ACTIVE_JOBS;
        const id = newJobId();
        const active = await app.quotas.reserveActiveJob(request.tenant, id, limit);
        if (active !== null) {
          throw new ApiError(429, 'too_many_active_jobs', `the tenant has ${active} queued or running jobs, its limit is ${limit}; wait for one to finish or cancel one`, null);
        }
        const job = queuedJob({
          id,
          tenant: request.tenant,
          kind,
          model: body.model,
          dataset: body.dataset,
          validation_dataset: body.validation_dataset ?? null,
          test_dataset: body.test_dataset ?? null,
          hyperparameters,
          resource_class: resourceClass,
          estimate: placement.estimate,
          ...(search ? { search, study: { trials: search.trials, complete: 0, pruned: 0, failed: 0, running: 0, best: null }, best_trial: null, importances: null } : {}),
        });
        try {
          // A dataset deleted between the check above and the reservation is caught here: the
          // delete refuses while the reservation stands, so after this read it cannot go.
          for (const param of ['dataset', 'validation_dataset', 'test_dataset'] as const) {
            const dsId = body[param];
            const ds = dsId ? await app.datasets.get(dsId) : null;
            if (dsId && (!ds || ds.tenant !== request.tenant)) throw new ApiError(400, 'dataset_not_found', `no dataset with id ${dsId}; upload it with POST /v1/datasets first`, param);
          }
          await app.jobs.create(job);
        } catch (err) {
          await app.quotas.releaseActiveJob(request.tenant, id).catch(() => undefined);
          if (err instanceof JobTooLargeError) throw new ApiError(413, 'job_too_large', err.message, 'body');
          throw err;
        }
        try {
          if (search) await queue.add('tune', { jobId: job.id }, tuneJobOptions(job.id));
          else await queue.add('train', { jobId: job.id }, trainJobOptions(job.id, app.config.MAKAM_JOB_ATTEMPTS));
        } catch (err) {
          await app.jobs.transition(job.id, 'failed', { error: { code: 'enqueue_failed', message: 'the job could not be queued' }, finished_at: new Date().toISOString() });
          throw err;
        }
        request.log.info({ jobId: job.id, resourceClass }, 'job queued');
        return { status: 202, body: job };
      });
      return reply.code(answer.status).send(answer.body as never);
    },
  );

  app.get('/', { schema: { summary: 'List jobs, newest first', querystring: ListJobsQuery, response: { 200: JobList, ...errorResponses } } }, async (request) => {
    const page = await app.jobs.list(request.tenant, request.query.limit, request.query.after, request.query.kind);
    return { object: 'list' as const, ...page };
  });

  app.get('/:id', { schema: { summary: 'Get a job', params: JobIdParams, response: { 200: Job, ...errorResponses } } }, async (request) => loadJob(request, request.params.id));

  app.get(
    '/:id/metrics',
    { schema: { summary: "The job's metric series (its latest attempt)", params: JobIdParams, response: { 200: MetricSeries, ...errorResponses } } },
    async (request) => {
      await loadJob(request, request.params.id);
      return { object: 'list' as const, data: await app.jobs.metrics(request.params.id) };
    },
  );

  app.get(
    '/:id/events',
    { schema: { summary: "The job's event log, oldest first, paged by cursor", params: JobIdParams, querystring: EventsQuery, response: { 200: EventList, ...errorResponses } } },
    async (request) => {
      await loadJob(request, request.params.id);
      const page = await app.jobs.events(request.params.id, request.query.after, request.query.limit);
      return { object: 'list' as const, data: page.data.map((e) => ({ id: e.id, created_at: e.created_at, type: e.data.type, data: e.data })), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/:id/trials',
    { schema: { summary: "A tune job's trials by number: parameters, state, per-epoch objective and final metrics", params: JobIdParams, response: { 200: TrialList, ...errorResponses } } },
    async (request) => {
      const job = await loadJob(request, request.params.id);
      if (job.kind !== 'tune') throw new ApiError(400, 'not_a_tune_job', `the job is a ${job.kind} job; only tune jobs have trials`, 'id');
      const metric = job.search!.objective.metric;
      const trials = await app.jobs.trials(job.id);
      const data = await Promise.all(
        trials.map(async (t) => {
          const series = await app.jobs.metrics(t.id);
          const trial = t.trial!;
          return {
            number: trial.number,
            job_id: t.id,
            status: t.status,
            state: trial.state,
            params: trial.params,
            value: trial.value ?? (t.status === 'succeeded' ? objectiveValue(t.result, metric) : null),
            intermediate_values: series.map((p) => ({ epoch: p.epoch, value: p[metric] })),
            result: t.result,
            error: t.error,
            attempts: t.attempts,
            started_at: t.started_at,
            finished_at: t.finished_at,
          };
        }),
      );
      return { object: 'list' as const, data };
    },
  );

  app.post(
    '/:id/cancel',
    { schema: { summary: 'Cancel a job: a queued one at once, a running one within seconds', params: JobIdParams, response: { 200: Job, ...errorResponses } } },
    async (request) => {
      const id = request.params.id;
      const job = await loadJob(request, id);
      if (job.status === 'cancelled' || job.status === 'cancelling') return job;
      if (isTerminal(job.status)) throw new ApiError(409, 'job_finished', `the job has already ${job.status}; only queued and running jobs can be cancelled`, 'id');
      // A running tune job's coordinator sees the cancelling record and cancels its trials.
      await requestCancel(app.jobs, app.redis, app.keys, (job.kind === 'tune' ? app.tuneQueues : app.queues).get(job.resource_class), id);
      return loadJob(request, id);
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
      const job = await loadJob(request, request.params.id);
      if (job.status !== 'succeeded' || !job.artifact) {
        throw new ApiError(409, 'artifact_not_ready', `the job is ${job.status}; its model can be downloaded once it has succeeded`, 'id');
      }
      const file = app.blobs.artifactPath(job.id);
      if (!(await app.blobs.exists(file))) throw new ApiError(404, 'artifact_missing', 'the model file is missing from the artifact store', 'id');
      return reply
        .header('content-type', 'application/gzip')
        .header('content-length', String(job.artifact.size_bytes))
        .header('content-disposition', `attachment; filename="${job.id}-model.tar.gz"`)
        .header('x-makam-sha256', job.artifact.sha256)
        .header('repr-digest', `sha-256=:${Buffer.from(job.artifact.sha256, 'hex').toString('base64')}:`)
        .send(app.blobs.read(file));
    },
  );
};

export default routes;
