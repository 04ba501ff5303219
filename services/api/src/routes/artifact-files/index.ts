// GET /v1/jobs/:id/artifacts/model/files/:name: one small file of a finished job's model archive
// (the model card, metrics.json with per-class scores and the confusion matrix, labels.json,
// config.json), read from the archive without unpacking it. The dashboard shows these.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { JOB_ID_PATTERN } from '@makam/shared/ids';
import { openTarMember } from '../../artifacts/tar-member.ts';
import { storedArtifact } from '../../jobs/artifact.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../../schemas/common.ts';

/** The files that can be read this way, with their content types. */
export const ARTIFACT_FILES: Record<string, string> = {
  'README.md': 'text/markdown; charset=utf-8',
  'metrics.json': 'application/json; charset=utf-8',
  'labels.json': 'application/json; charset=utf-8',
  'config.json': 'application/json; charset=utf-8',
};

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/:id/artifacts/model/files/:name',
    {
      schema: {
        summary: "One small file of the job's model archive: README.md (the model card), metrics.json, labels.json or config.json",
        params: Type.Object(
          {
            id: Type.String({ pattern: JOB_ID_PATTERN, description: 'A job id (job_...)' }),
            name: Type.Union(Object.keys(ARTIFACT_FILES).map((n) => Type.Literal(n)) as never, { description: 'The file' }),
          },
          { additionalProperties: false },
        ),
        response: { 200: { type: 'string', description: 'The file as stored in the archive' } as never, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id, name } = request.params as { id: string; name: string };
      const job = await app.ownedJob(request.tenant, id);
      const { file } = await storedArtifact(app.blobs, job, 'its model files can be read');
      // Streamed, not buffered: huge labels make a model card of megabytes (it answered 500 above 8 MB).
      const member = await openTarMember(file, name);
      if (!member) throw new ApiError(404, 'file_not_in_artifact', `the model archive has no ${name}`, 'name');
      return reply.header('content-type', ARTIFACT_FILES[name]!).header('content-length', member.size).header('cache-control', 'private, max-age=3600').send(member.stream);
    },
  );
};

export default routes;
