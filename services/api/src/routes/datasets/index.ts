import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import { newDatasetId, type DatasetRecord } from '@makam/shared';
import { ApiError, notFound } from '../../errors.ts';
import { ingestRaw, receiveRaw, tooLarge, type DatasetFormat } from '../../datasets/ingest.ts';
import { idempotencyKey, withIdempotency } from '../../idempotency.ts';
import { errorResponses } from '../../schemas/common.ts';
import { Dataset, DatasetIdParams, DatasetUploadQuery } from '../../schemas/datasets.ts';

const CONTENT_TYPES: Record<string, DatasetFormat> = {
  'application/jsonl': 'jsonl',
  'application/x-ndjson': 'jsonl',
  'application/x-jsonlines': 'jsonl',
  'application/json-lines': 'jsonl',
  'text/csv': 'csv',
};

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // Uploads reach the handler as a stream; ingest enforces the size limit while reading.
  app.addContentTypeParser(Object.keys(CONTENT_TYPES), (_req, payload, done) => done(null, payload));
  // Any other type reaches the handler too, which refuses it with a message that says what to send.
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.post(
    '/',
    {
      bodyLimit: app.config.MAKAM_MAX_DATASET_BYTES,
      schema: {
        summary: 'Upload a dataset (JSON lines or CSV with columns text and label, UTF-8)',
        querystring: DatasetUploadQuery,
        response: { 201: Dataset, ...errorResponses },
      },
    },
    async (request, reply) => {
      const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const format = request.query.format ?? CONTENT_TYPES[mediaType];
      if (!format) {
        throw new ApiError(415, 'unsupported_media_type', `send the dataset as application/jsonl or text/csv (got '${mediaType || 'none'}'), or add ?format=jsonl|csv`, 'Content-Type');
      }
      const declared = Number(request.headers['content-length'] ?? 0);
      if (declared > app.config.MAKAM_MAX_DATASET_BYTES) {
        reply.header('connection', 'close');
        throw tooLarge(app.config.MAKAM_MAX_DATASET_BYTES);
      }
      const body = request.body as Readable;
      const raw = await receiveRaw(body, app.blobs, app.config.MAKAM_MAX_DATASET_BYTES);
      try {
        const fingerprint = `${raw.sha256}:${format}:${request.query.name ?? ''}`;
        const answer = await withIdempotency(app, request.tenant, 'datasets', idempotencyKey(request), fingerprint, async () => {
          const result = await ingestRaw(raw.tempPath, format, app.blobs, async (r) => {
            const limit = app.config.MAKAM_TENANT_MAX_STORED_BYTES;
            const used = await app.quotas.storedBytes(request.tenant);
            if (used + r.size_bytes > limit) {
              throw new ApiError(403, 'storage_quota_exceeded', `the tenant stores ${used} of its ${limit} dataset bytes; this dataset (${r.size_bytes} bytes) would pass the limit`, 'body');
            }
          });
          const record: DatasetRecord = {
            id: newDatasetId(),
            object: 'dataset',
            tenant: request.tenant,
            name: request.query.name ?? null,
            format,
            ...result,
            created_at: new Date().toISOString(),
          };
          await app.datasets.create(record);
          await app.quotas.addBytes(request.tenant, record.size_bytes);
          request.log.info({ datasetId: record.id, rows: record.rows, labels: record.labels.length }, 'dataset stored');
          return { status: 201, body: record };
        });
        return reply.code(answer.status).send(answer.body as never);
      } finally {
        await app.blobs.remove(raw.tempPath);
      }
    },
  );

  app.get('/:id', { schema: { summary: 'Get a dataset', params: DatasetIdParams, response: { 200: Dataset, ...errorResponses } } }, async (request) => {
    const record = await app.datasets.get(request.params.id);
    // Another tenant's dataset answers exactly as a missing one does.
    if (!record || record.tenant !== request.tenant) throw notFound('dataset', request.params.id);
    return record;
  });
};

export default routes;
