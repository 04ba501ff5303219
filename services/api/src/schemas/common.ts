import { Type } from 'typebox';

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      param: Type.Union([Type.String(), Type.Null()]),
      // A write the primary made and the replicas did not confirm: what to look up, not make again.
      job_id: Type.Optional(Type.String({ description: '503 not_replicated of a job submit: the job the primary stored; GET /v1/jobs/{job_id} instead of submitting again' })),
      dataset_id: Type.Optional(Type.String({ description: '503 not_replicated of a dataset upload: the dataset the primary stored; GET /v1/datasets/{dataset_id} instead of uploading again' })),
    }),
  },
  { $id: 'Error' },
);

/** Responses every route can give besides its success. */
export const errorResponses = {
  400: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  500: ErrorResponse,
  503: ErrorResponse,
};

export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const U64_MAX = '18446744073709551615';
/** A decimal unsigned 64-bit integer: up to 19 digits, or 20 digits no larger than 2^64 - 1. */
const U64 = `(?:[0-9]{1,19}|${[...U64_MAX].map((d, i) => (d === '0' ? null : `${U64_MAX.slice(0, i)}[0-${Number(d) - 1}][0-9]{${U64_MAX.length - i - 1}}`)).filter(Boolean).join('|')}|${U64_MAX})`;
/**
 * A Redis stream id as a cursor: two unsigned 64-bit integers (Redis refuses anything larger, and
 * the API would answer 500). The very last id is refused too: nothing can follow it, and Redis
 * refuses it as an exclusive start.
 */
export const STREAM_ID_PATTERN = `^(?!${U64_MAX}-${U64_MAX}$)${U64}-${U64}$`;
export const STREAM_ID_HINT = "an event id: two unsigned 64-bit integers joined by '-', such as 1700000000000-0";

/** Readable words for patterns whose source says little to a client. */
export const PATTERN_HINTS: Record<string, string> = { [STREAM_ID_PATTERN]: STREAM_ID_HINT };
