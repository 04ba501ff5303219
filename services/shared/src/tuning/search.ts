// A tune job's search as the API stores it, and what both the API (to refuse a bad search) and the
// dispatcher's tune coordinator (to run it) need to know about it. The sampling and pruning
// themselves are Optuna's, in the Python study process (workers-python/src/makam_study).

import type { CategoricalParam, ParamSpace, Pruner, StudyOps } from './study-protocol.gen.ts';

export const OBJECTIVE_METRICS = ['macro_f1', 'weighted_f1', 'accuracy', 'validation_loss'] as const;
export type ObjectiveMetric = (typeof OBJECTIVE_METRICS)[number];
// The study process's contract (contracts/study-protocol.json, generated) says what a space, a
// sampler and a pruner are; the API's lists below are checked against it at compile time.
export const SAMPLERS = Object.keys({ tpe: 0, random: 0, grid: 0 } satisfies Record<StudyOps['create']['args']['sampler'], 0>) as StudyOps['create']['args']['sampler'][];
export const PRUNERS = Object.keys({ median: 0, successive_halving: 0, none: 0 } satisfies Record<Pruner['type'], 0>) as Pruner['type'][];

/** A choice of a categorical parameter (the contract allows null; the API's check-search refuses it). */
export type Scalar = CategoricalParam['choices'][number];

/** A search with every default filled in. */
export interface Search {
  space: Record<string, ParamSpace>;
  objective: { metric: ObjectiveMetric; direction: 'maximize' | 'minimize' };
  trials: number;
  parallelism: number;
  sampler: StudyOps['create']['args']['sampler'];
  pruner: Pruner;
  seed: number;
}

/** Where a tune job's Optuna study lives in Redis (Optuna's journal storage, under this prefix). */
export const studyKey = (redisPrefix: string, tuneJobId: string): string => `${redisPrefix}:study:${tuneJobId}`;

/** The most points a grid search may have (the most trials a tune job may ask for). */
export const MAX_GRID_POINTS = 1000;

/**
 * How many values a grid search visits for one parameter, counted from low, high and step without
 * building them (so the work never grows with the values inside a request); null when it has no
 * finite grid (no step, or log scale); Infinity when the count passes what a number holds.
 * Counted like the Python side: floor((high - low) / step + 1e-9) + 1.
 */
export function gridCount(p: ParamSpace): number | null {
  if (p.type === 'categorical') return p.choices.length;
  const step = p.step ?? (p.type === 'int' ? 1 : undefined);
  if (step === undefined || p.log) return null;
  const n = Math.floor((p.high - p.low) / step + 1e-9) + 1;
  return Number.isNaN(n) ? Infinity : Math.max(n, 1);
}

/** The values a grid search visits for one parameter, or null when it has no finite grid or more than `max` values. */
export function gridValues(p: ParamSpace, max = MAX_GRID_POINTS): Scalar[] | null {
  if (p.type === 'categorical') return p.choices;
  const n = gridCount(p);
  if (n === null || n > max) return null;
  const step = p.step ?? 1;
  // Rounded like the Python side does, so both name the same points.
  return Array.from({ length: n }, (_, i) => Number((p.low + i * step).toPrecision(12)));
}

/** How many points the grid has (Infinity when a parameter has no finite grid); arithmetic only. */
export function gridSize(space: Record<string, ParamSpace>): number {
  let n = 1;
  for (const p of Object.values(space)) n *= gridCount(p) ?? Infinity;
  return n;
}

/** The extreme values a parameter can take: its bounds, or every choice. */
export function extremes(p: ParamSpace): Scalar[] {
  return p.type === 'categorical' ? p.choices : [p.low, p.high];
}

/**
 * The trial's value of the objective from a finished run's result: with `cv_folds`, the mean over the
 * folds of cross-validation (the worker's training/cross_validation.py); else the best checkpoint's
 * validation row.
 */
export function objectiveValue(result: Record<string, unknown> | null | undefined, metric: ObjectiveMetric): number | null {
  if (!result) return null;
  const folds = (result.cross_validation as { mean?: Record<string, unknown> } | null | undefined)?.mean;
  if (folds) {
    const mean = folds[metric];
    return typeof mean === 'number' && Number.isFinite(mean) ? mean : null;
  }
  const validation = result.validation as Record<string, unknown> | null | undefined;
  const v = validation?.[metric] ?? (result.evaluated_on === 'validation' ? result[metric] : undefined);
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
