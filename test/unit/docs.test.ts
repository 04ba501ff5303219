import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { OUTPUTS, renderAll } from '../../scripts/gen-contracts.ts';
import { ROOT } from '../support/stack.ts';

test('docs/hyperparameters.md is generated from the contract and is fresh', async () => {
  const committed = await readFile(path.join(ROOT, OUTPUTS.md), 'utf8');
  assert.equal(committed, renderAll()[OUTPUTS.md], 'run: node scripts/gen-contracts.ts');
});

test('docs/hyperparameters.md shows each default once, in its own column, never inside a meaning', async () => {
  const committed = await readFile(path.join(ROOT, OUTPUTS.md), 'utf8');
  const rows = committed.split('\n').filter((line) => line.startsWith('| `'));
  const contract = JSON.parse(await readFile(path.join(ROOT, 'contracts/hyperparameters.json'), 'utf8'));
  assert.equal(rows.length, contract.hyperparameters.length, 'one row per key of the contract');
  for (const row of rows) {
    const meaning = row.split(' | ').at(-1)!;
    assert.doesNotMatch(meaning, /\((true|false|\d[\d.e-]*)\)/, row);
  }
});
