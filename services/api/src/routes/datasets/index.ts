import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Readable } from 'node:stream';
import { newDatasetId } from '@makam/shared/ids';
import type { DatasetRecord } from '@makam/shared/dataset-store';
import { ApiError, notFound } from '../../errors.ts';
import { ingestRaw, receiveRaw, tooLarge, type DatasetFormat, type IngestLimits } from '../../datasets/ingest.ts';
import { idempotencyKey, withIdempotency } from '../../idempotency.ts';
import { errorResponses } from '../../schemas/common.ts';
import { Dataset, DatasetIdParams, DatasetUploadQuery, DeletedDataset } from '../../schemas/datasets.ts';

// A Map: the media type comes from the client, and a plain object would answer for 'constructor'.
const CONTENT_TYPES = new Map<string, DatasetFormat>([
  ['application/jsonl', 'jsonl'],
  ['application/x-ndjson', 'jsonl'],
  ['application/x-jsonlines', 'jsonl'],
  ['application/json-lines', 'jsonl'],
  ['text/csv', 'csv'],
]);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // Uploads reach the handler as a stream whatever their type (here only: the parsers of this
  // plugin's scope): the JSON parser would hand it an object, or parse a 256 MB body on the event
  // loop. Ingest enforces the size limit while reading; the handler refuses a type it cannot read.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  const limits: IngestLimits = {
    maxTextBytes: app.config.MAKAM_MAX_TEXT_BYTES,
    maxLabelChars: app.config.MAKAM_MAX_LABEL_CHARS,
    maxLabels: app.config.MAKAM_MAX_LABELS,
  };

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
      const format = request.query.format ?? CONTENT_TYPES.get(mediaType);
      if (!format) {
        throw new ApiError(415, 'unsupported_media_type', `send the dataset as application/jsonl or text/csv (got '${mediaType || 'none'}'), or add ?format=jsonl|csv`, 'Content-Type');
      }
      const declared = Number(request.headers['content-length'] ?? 0);
      if (declared > app.config.MAKAM_MAX_DATASET_BYTES) {
        reply.header('connection', 'close');
        throw tooLarge(app.config.MAKAM_MAX_DATASET_BYTES);
      }
      const body = request.body;
      if (!(body instanceof Readable)) {
        throw new ApiError(400, 'missing_body', 'send the dataset file itself as the request body (JSON lines or CSV), with content-type application/jsonl or text/csv', 'body');
      }
      const raw = await receiveRaw(body, app.blobs, app.config.MAKAM_MAX_DATASET_BYTES);
      try {
        const fingerprint = `${raw.sha256}:${format}:${request.query.name ?? ''}`;
        const answer = await withIdempotency(app, request.tenant, 'datasets', idempotencyKey(request), fingerprint, async () => {
          const id = newDatasetId();
          let taken: { sha256: string; bytes: number } | null = null;
          let record: DatasetRecord;
          try {
            const result = await ingestRaw(
              raw.tempPath,
              format,
              app.blobs,
              async (r) => {
                // The quota is checked and taken in one step, with the blob's reference (a delete
                // of another dataset with the same content then keeps the blob).
                const limit = app.config.MAKAM_TENANT_MAX_STORED_BYTES;
                const used = await app.quotas.reserveBytes(request.tenant, r.size_bytes, limit, app.datasets.refsKey(r.sha256), id);
                if (used !== null) {
                  throw new ApiError(403, 'storage_quota_exceeded', `the tenant stores ${used} of its ${limit} dataset bytes (MAKAM_TENANT_MAX_STORED_BYTES); this dataset (${r.size_bytes} bytes) would pass the limit: delete a dataset with DELETE /v1/datasets/{id} first`, 'body');
                }
                taken = { sha256: r.sha256, bytes: r.size_bytes };
              },
              limits,
            );
            record = { id, object: 'dataset', tenant: request.tenant, name: request.query.name ?? null, format, ...result, created_at: new Date().toISOString() };
            await app.datasets.create(record);
          } catch (err) {
            // Not stored: the bytes and the reference go back, and the blob if nothing else holds it.
            const t = taken as { sha256: string; bytes: number } | null;
            if (t) {
              await app.quotas.releaseBytes(request.tenant, t.bytes, app.datasets.refsKey(t.sha256), id);
              await app.datasets.dropBlobIfUnused(t.sha256, app.blobs);
            }
            throw err;
          }
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

  app.delete(
    '/:id',
    {
      schema: {
        summary: "Delete a dataset: its record goes, its bytes return to the tenant's quota, and its file goes when no other dataset has the same content",
        params: DatasetIdParams,
        response: { 200: DeletedDataset, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      // Record, quota and blob reference change in one step; another tenant's dataset is missing.
      const r = await app.datasets.remove(id, request.tenant, app.quotas.bytesKey(request.tenant));
      if (r.outcome === 'missing') throw notFound('dataset', id);
      if (r.outcome === 'busy') {
        throw new ApiError(409, 'dataset_in_use', `job ${r.job} (queued or running) uses dataset ${id}; wait for it to finish or cancel it, then delete the dataset`, 'id');
      }
      if (r.references === 0) await app.datasets.dropBlobIfUnused(r.sha256, app.blobs);
      request.log.info({ datasetId: id }, 'dataset deleted');
      return { id, object: 'dataset' as const, deleted: true as const };
    },
  );
};

export default routes;
