import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { hyperparameterTable } from '../../scripts/hyperparameter-table.ts';
import { ROOT } from '../support/stack.ts';

test('docs/hyperparameters.md is generated from the schema and is fresh', async () => {
  const committed = await readFile(path.join(ROOT, 'docs/hyperparameters.md'), 'utf8');
  assert.equal(committed, hyperparameterTable(), 'run: node scripts/hyperparameter-table.ts > docs/hyperparameters.md');
});
