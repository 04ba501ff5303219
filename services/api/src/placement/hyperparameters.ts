// The hyperparameters a job accepts, which family each applies to, and their defaults: read from
// the table generated from contracts/hyperparameters.json (the worker's dataclass and the docs come
// from the same file; scripts/gen-contracts.ts --check keeps them fresh).
import { HYPERPARAMETER_TABLE, type Family } from '../contracts/hyperparameters.gen.ts';

export const NEURAL: readonly Family[] = ['encoder', 'decoder', 'scratch'];

/** Every hyperparameter: the families it applies to and its default for each of them. */
export const HYPERPARAMETERS = HYPERPARAMETER_TABLE;

export function appliesTo(name: string, family: Family): boolean {
  // Own keys only: a name like 'constructor' or 'toString' is unknown, not Object.prototype's.
  return Object.hasOwn(HYPERPARAMETERS, name) && HYPERPARAMETERS[name]!.families.includes(family);
}

const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === 'object') for (const v of Object.values(Object.freeze(value))) deepFreeze(v);
  return value;
};

// Built once a family and frozen: every POST asked for them, and cloning each default was 4% of its busy time.
const DEFAULTS = new Map<Family, Readonly<Record<string, unknown>>>();

/** The defaults of every hyperparameter that applies to `family`, frozen (spread them into a job's own). */
export function defaultsFor(family: Family): Readonly<Record<string, unknown>> {
  let defaults = DEFAULTS.get(family);
  if (!defaults) {
    const out: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(HYPERPARAMETERS)) {
      if (spec.families.includes(family)) out[name] = structuredClone(spec.defaults[family]);
    }
    // Copied by a spread: an object filled key by key is left in V8's dictionary mode, which a
    // spread copies some 50 times slower (6.5 µs against 0.13 for a tfidf job's 21 defaults).
    DEFAULTS.set(family, (defaults = deepFreeze({ ...out })));
  }
  return defaults;
}

/** The first given key that does not apply to `family`, with the families it does apply to. */
export function misapplied(given: Record<string, unknown>, family: Family): { name: string; families: readonly Family[] } | null {
  for (const name of Object.keys(given)) {
    if (!appliesTo(name, family)) return { name, families: Object.hasOwn(HYPERPARAMETERS, name) ? HYPERPARAMETERS[name]!.families : [] };
  }
  return null;
}
