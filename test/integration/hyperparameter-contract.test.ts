// The API and the Python worker apply one contract of hyperparameters (contracts/hyperparameters.json):
// the same names, families and defaults, and they accept and refuse exactly the same values. The
// worker is asked through its own modules, in one Python process per batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { FAMILIES, type Family } from '../../services/api/src/contracts/hyperparameters.gen.ts';
import { defaultsFor, misapplied } from '../../services/api/src/placement/hyperparameters.ts';
import { Hyperparameters } from '../../services/api/src/schemas/jobs.ts';
import { checkHyperparameters } from '../../services/api/src/jobs/check-hyperparameters.ts';
import { ApiError } from '../../services/api/src/errors.ts';
import { familiesOf, loadContract } from '../../scripts/gen-contracts.ts';
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

// The worker's side of a batch: each case travels as StartRun's Struct does, then is checked by the
// same call the servicer makes. Prints null (accepted) or the refusal per case.
const JUDGE = `
import json, sys
from makam.worker.v1 import worker_pb2
from makam_worker.convert import struct_to_dict
from makam_worker.training.config import Hyperparameters
out = []
for family, values in json.load(sys.stdin):
    request = worker_pb2.StartRunRequest()
    request.hyperparameters.update(values)
    try:
        Hyperparameters.from_dict(struct_to_dict(request, "hyperparameters") or {}, family)
        out.append(None)
    except ValueError as e:
        out.append(str(e))
print(json.dumps(out))
`;

// The API's side: the request schema as the API compiles a body (no coercion), then the family and
// cross-key checks POST /v1/jobs applies.
const ajv = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: false, allErrors: false, strict: false });
const validate = ajv.compile(Hyperparameters);
function apiRefusal(family: Family, given: Record<string, unknown>): string | null {
  const values = structuredClone(given);
  if (!validate(values)) return ajv.errorsText(validate.errors);
  const wrong = misapplied(values, family);
  if (wrong) return `${wrong.name} applies to ${wrong.families.join(', ')}`;
  try {
    checkHyperparameters(family, { ...defaultsFor(family), ...values });
    return null;
  } catch (err) {
    if (err instanceof ApiError) return err.message;
    throw err;
  }
}

type Entry = ReturnType<typeof loadContract>['hyperparameters'][number];
const contract = loadContract();
const TINY = 1e-9;

/** A value the entry's own bounds accept (rules between keys may still refuse it). */
function valid(e: Entry): fc.Arbitrary<unknown> {
  const weights = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1000, noNaN: true })), { minKeys: 1, maxKeys: 4 });
  const withNull = (a: fc.Arbitrary<unknown>) => (e.nullable ? fc.oneof(a, fc.constant(null)) : a);
  switch (e.type) {
    // Edges and a coarse grid as often as anywhere else: they are where two copies of a bound differ.
    case 'integer': return withNull(fc.oneof(fc.integer({ min: e.minimum!, max: e.maximum! }), fc.constantFrom(e.minimum!, e.maximum!, e.minimum! + 1), fc.integer({ min: e.minimum!, max: Math.min(e.maximum!, e.minimum! + 64) })));
    case 'number': {
      const low = e.exclusiveMinimum ?? e.minimum!;
      const high = e.exclusiveMaximum ?? e.maximum!;
      const inside = fc.double({ min: low, max: high, noNaN: true, minExcluded: e.exclusiveMinimum !== undefined, maxExcluded: e.exclusiveMaximum !== undefined });
      const edges = [e.minimum, e.maximum].filter((x): x is number => x !== undefined);
      const grid = fc.integer({ min: 1, max: 9 }).map((i) => low + ((high - low) * i) / 10);
      return fc.oneof(inside, grid, ...edges.map((x) => fc.constant(x)));
    }
    case 'boolean': return fc.boolean();
    case 'enum': return fc.constantFrom(...e.choices!);
    case 'string_list': return fc.array(fc.stringMatching(/^[A-Za-z0-9_.]{1,12}$/), { minLength: e.minItems!, maxLength: Math.min(e.maxItems!, 6) });
    case 'label_weights': return withNull(weights);
    case 'class_weights': return withNull(fc.oneof(fc.constant('balanced'), weights));
  }
}

/** A value one step outside the entry's bounds, or of the wrong type. */
function invalid(e: Entry): fc.Arbitrary<unknown> {
  const types = fc.constantFrom<unknown>('3', true, [], {}, ...(e.nullable ? [] : [null]), ...(e.type === 'boolean' ? [0, 1] : [false]));
  const wrongType = (bounds: fc.Arbitrary<unknown>) => fc.oneof({ weight: 1, arbitrary: types }, { weight: 3, arbitrary: bounds });
  switch (e.type) {
    case 'integer':
      return wrongType(fc.constantFrom(e.minimum! - 1, e.maximum! + 1, e.minimum! + 0.5));
    case 'number': {
      const out = [e.exclusiveMinimum, e.exclusiveMaximum].filter((x): x is number => x !== undefined);
      if (e.minimum !== undefined) out.push(e.minimum - TINY);
      if (e.maximum !== undefined) out.push(e.maximum + Math.max(TINY, e.maximum * TINY));
      return wrongType(fc.constantFrom(...out));
    }
    case 'boolean': return types;
    case 'enum': return wrongType(fc.constantFrom('', `${e.choices![0]}x`, e.choices![0]!.toUpperCase()));
    case 'string_list': return wrongType(fc.constantFrom([], ['q proj'], ['q_proj\n'], [''], Array.from({ length: e.maxItems! + 1 }, (_, i) => `m${i}`), [3]));
    case 'label_weights':
    case 'class_weights':
      return wrongType(fc.constantFrom({}, { pop: -TINY }, { pop: 1000 + TINY }, { pop: 0, rock: 0 }, { pop: '1' }, ...(e.type === 'class_weights' ? ['inverse'] : [])));
  }
}

// A case: a family, a few of its keys with valid values, and at most one fault: a value out of its
// bounds by one step or of the wrong type, or a key of another family. One fault per case, so the
// fault is what the two sides must both refuse.
const caseOf = fc.constantFrom(...FAMILIES).chain((family) => {
  const own = contract.hyperparameters.filter((e) => familiesOf(contract, e).includes(family));
  const other = contract.hyperparameters.filter((e) => !familiesOf(contract, e).includes(family));
  const pair = (e: Entry, bad: boolean) => (bad ? invalid(e) : valid(e)).map((v) => [e.name, v] as const);
  const good = fc.uniqueArray(fc.constantFrom(...own), { maxLength: 4, selector: (e) => e.name }).chain((es) => fc.tuple(...es.map((e) => pair(e, false))));
  const faults: Array<{ weight: number; arbitrary: fc.Arbitrary<readonly [string, unknown] | null> }> = [
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 4, arbitrary: fc.constantFrom(...own).chain((e) => pair(e, true)) },
  ];
  if (other.length) faults.push({ weight: 1, arbitrary: fc.constantFrom(...other).chain((e) => pair(e, false)) });
  return fc.tuple(good, fc.oneof(...faults)).map(([pairs, fault]) => [family, Object.fromEntries(fault ? [...pairs, fault] : pairs)] as [Family, Record<string, unknown>]);
});

test('the API and the worker accept and refuse exactly the same hyperparameters', () => {
  const cases = fc.sample(caseOf, { numRuns: 10000, seed: 11 });
  const worker = JSON.parse(execFileSync(PYTHON, ['-c', JUDGE], { cwd: ROOT, encoding: 'utf8', input: JSON.stringify(cases), maxBuffer: 64 << 20 })) as Array<string | null>;
  assert.equal(worker.length, cases.length);
  const disagreements = cases
    .map(([family, values], i) => ({ family, values, api: apiRefusal(family, values), worker: worker[i] }))
    .filter((c) => (c.api === null) !== (c.worker === null));
  assert.deepEqual(disagreements.slice(0, 5), [], `${disagreements.length} of ${cases.length} cases disagree`);
  // Not vacuous: both answers are common.
  const accepted = worker.filter((w) => w === null).length;
  assert.ok(accepted > cases.length / 5 && accepted < (cases.length * 4) / 5, `accepted ${accepted} of ${cases.length}`);
});
