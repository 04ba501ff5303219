// GET /v1/jobs/:id/events with `Accept: text/event-stream`: the job's events as server-sent
// events. Each event's `id` is its stream cursor, so a reconnecting client resumes with
// Last-Event-ID (or ?after=); comment lines keep idle connections open; after the job's terminal
// status the stream sends `event: end` and closes, and a client that comes back after that
// gets 204, which tells an EventSource to stop reconnecting.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isTerminal } from '@makam/shared/job-state';
import type { StoredEvent } from '@makam/shared/job-store';
import { ApiError } from '../../errors.ts';
import { compareIds, endsJob } from '../../events/job-event-hub.ts';
import { SSE } from '../../plugins/live-events.ts';
import { STREAM_ID_HINT, STREAM_ID_PATTERN } from '../../schemas/common.ts';
import { JobIdParams } from '../../schemas/jobs.ts';

const CURSOR = new RegExp(STREAM_ID_PATTERN);
const PAGE = 1000;
/** A slow client whose unsent buffer grows past this is dropped; it resumes from its cursor. */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** How long a stream of an ended job waits for the terminal event that has not shown up. */
const END_GRACE_MS = 5_000;

export const StreamQuery = Type.Object(
  { after: Type.Optional(Type.String({ pattern: STREAM_ID_PATTERN, maxLength: 41, description: 'Resume after this cursor (Last-Event-ID wins when both are sent)' })) },
  { additionalProperties: false },
);

export const formatEvent = (e: StoredEvent): string =>
  `id: ${e.id}\nevent: ${e.data.type}\ndata: ${JSON.stringify({ id: e.id, created_at: e.created_at, type: e.data.type, data: e.data })}\n\n`;

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const hub = app.jobEvents;
  const heartbeatMs = app.config.MAKAM_SSE_HEARTBEAT_MS;

  app.get(
    '/:id/events',
    {
      constraints: { sse: SSE },
      // Documented on the JSON route's operation as its text/event-stream response (plugins/openapi.ts).
      schema: { hide: true, params: JobIdParams, querystring: StreamQuery },
    },
    async (request, reply) => {
      const id = request.params.id;
      await app.ownedJob(request.tenant, id);
      const header = request.headers['last-event-id'];
      const given = (Array.isArray(header) ? header[0] : header)?.trim() || request.query.after || null;
      if (given && !CURSOR.test(given)) throw new ApiError(400, 'invalid_request', `'Last-Event-ID' must be ${STREAM_ID_HINT}`, 'Last-Event-ID');
      let cursor: string | null = given;
      // Resuming after the job's last event: nothing will ever follow.
      if (cursor) {
        const at = await hub.at(id, cursor);
        if (at && endsJob(at)) return reply.code(204).send();
      }

      const res = reply.raw;
      let ended = false;
      let backfilling = true;
      const pending: StoredEvent[][] = [];
      let heartbeat: NodeJS.Timeout | null = null;
      let grace: NodeJS.Timeout | null = null;
      let unwatch = () => {};

      const cleanup = () => {
        ended = true;
        if (heartbeat) clearInterval(heartbeat);
        if (grace) clearTimeout(grace);
        unwatch();
      };
      const finish = (status: string | null) => {
        if (ended) return;
        if (status) res.write(`event: end\ndata: ${JSON.stringify({ status })}\n\n`);
        res.end();
        cleanup();
      };
      const deliver = (events: StoredEvent[]) => {
        for (const e of events) {
          if (ended) return;
          if (cursor && compareIds(e.id, cursor) <= 0) continue;
          res.write(formatEvent(e));
          cursor = e.id;
          const status = endsJob(e);
          if (status) return finish(status);
        }
        if (res.writableLength > MAX_BUFFERED) {
          request.log.warn({ jobId: id }, 'event stream client too slow; dropping it');
          res.destroy();
          cleanup();
        }
      };

      const watched = await hub.watch(id, {
        push: (events) => (backfilling ? pending.push(events) : deliver(events)),
        stop: () => finish(null),
      });
      unwatch = watched.unwatch;
      reply.hijack();
      res.on('close', cleanup);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
      try {
        for (;;) {
          const page = await hub.backlog(id, cursor, PAGE);
          deliver(page);
          if (ended || page.length < PAGE) break;
        }
        backfilling = false;
        for (const events of pending.splice(0)) deliver(events);
        const status = ended ? null : await app.jobs.status(id);
        if (status && isTerminal(status)) {
          // The record has ended but its terminal event is not (yet, or any longer) in the stream.
          grace = setTimeout(() => finish(status), END_GRACE_MS);
        }
      } catch (err) {
        request.log.error({ err, jobId: id }, 'event stream failed');
        finish(null);
      }
    },
  );
};

export default routes;
