// A tune job's search as the API stores it, and what both the API (to refuse a bad search) and the
// dispatcher's tune coordinator (to run it) need to know about it. The sampling and pruning
// themselves are Optuna's, in the Python study process (workers-python/src/makam_study).

export const OBJECTIVE_METRICS = ['macro_f1', 'weighted_f1', 'accuracy', 'validation_loss'] as const;
export type ObjectiveMetric = (typeof OBJECTIVE_METRICS)[number];
export const SAMPLERS = ['tpe', 'random', 'grid'] as const;
export const PRUNERS = ['median', 'successive_halving', 'none'] as const;

export type Scalar = string | number | boolean;

export type ParamSpace =
  | { type: 'int'; low: number; high: number; step?: number; log?: boolean }
  | { type: 'float'; low: number; high: number; step?: number; log?: boolean }
  | { type: 'categorical'; choices: Scalar[] };

/** A search with every default filled in. */
export interface Search {
  space: Record<string, ParamSpace>;
  objective: { metric: ObjectiveMetric; direction: 'maximize' | 'minimize' };
  trials: number;
  parallelism: number;
  sampler: (typeof SAMPLERS)[number];
  pruner: { type: (typeof PRUNERS)[number]; startup_trials?: number; warmup_epochs?: number };
  seed: number;
}

/** Where a tune job's Optuna study lives in Redis (Optuna's journal storage, under this prefix). */
export const studyKey = (redisPrefix: string, tuneJobId: string): string => `${redisPrefix}:study:${tuneJobId}`;

/** The values a grid search visits for one parameter, or null when it has no finite grid. */
export function gridValues(p: ParamSpace): Scalar[] | null {
  if (p.type === 'categorical') return p.choices;
  const step = p.step ?? (p.type === 'int' ? 1 : undefined);
  if (step === undefined || p.log) return null;
  const out: number[] = [];
  // Rounded like the Python side does, so both count the same points.
  for (let i = 0; ; i++) {
    const v = Number((p.low + i * step).toPrecision(12));
    if (v > p.high + 1e-12) break;
    out.push(v);
    if (out.length > 1_000_000) break;
  }
  return out;
}

/** How many points the grid has (Infinity when a parameter has no finite grid). */
export function gridSize(space: Record<string, ParamSpace>): number {
  let n = 1;
  for (const p of Object.values(space)) {
    const values = gridValues(p);
    if (!values) return Infinity;
    n *= values.length;
  }
  return n;
}

/** The extreme values a parameter can take: its bounds, or every choice. */
export function extremes(p: ParamSpace): Scalar[] {
  return p.type === 'categorical' ? p.choices : [p.low, p.high];
}

/** The trial's value of the objective from a finished run's result (the best checkpoint's validation row). */
export function objectiveValue(result: Record<string, unknown> | null | undefined, metric: ObjectiveMetric): number | null {
  if (!result) return null;
  const validation = result.validation as Record<string, unknown> | null | undefined;
  const v = validation?.[metric] ?? (result.evaluated_on === 'validation' ? result[metric] : undefined);
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
