// The API and the Python worker apply one table of hyperparameters: the same names, the same
// families, the same defaults. The worker is asked through its own config module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { FAMILIES, defaultsFor } from '@makam/shared';
import { PYTHON, ROOT } from '../support/stack.ts';

const DUMP = `
import dataclasses, json
from makam_worker.training.config import Hyperparameters, FAMILIES
out = {}
for family in FAMILIES:
    hp = Hyperparameters.from_dict({}, family)
    out[family] = {f.name: getattr(hp, f.name) for f in dataclasses.fields(hp) if family in f.metadata.get("families", ()) and f.name != "family"}
print(json.dumps(out))
`;

test('every family has the same hyperparameters and defaults in the API and the worker', () => {
  const worker = JSON.parse(execFileSync(PYTHON, ['-c', DUMP], { cwd: ROOT, encoding: 'utf8' })) as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(worker).sort(), [...FAMILIES].sort());
  for (const family of FAMILIES) {
    assert.deepEqual(worker[family], defaultsFor(family), `family ${family}`);
  }
});
