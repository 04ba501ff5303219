import { Type } from 'typebox';
import { DATASET_ID_PATTERN } from '@makam/shared/ids';
import { Nullable } from './common.ts';

export const DatasetIdParams = Type.Object(
  { id: Type.String({ pattern: DATASET_ID_PATTERN, description: 'A dataset id (ds_...)' }) },
  { additionalProperties: false },
);

export const DatasetUploadQuery = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'A name for people' })),
    format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('csv')], { description: 'Overrides the Content-Type' })),
  },
  { additionalProperties: false },
);

export const Dataset = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('dataset'),
    tenant: Type.String(),
    name: Nullable(Type.String()),
    format: Type.Union([Type.Literal('jsonl'), Type.Literal('csv')]),
    sha256: Type.String(),
    size_bytes: Type.Integer(),
    rows: Type.Integer(),
    labels: Type.Array(Type.String()),
    label_counts: Type.Record(Type.String(), Type.Integer()),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Dataset' },
);

export const DeletedDataset = Type.Object({
  id: Type.String(),
  object: Type.Literal('dataset'),
  deleted: Type.Literal(true),
});
