// Checks a tune job's search against the hyperparameters a finetune job accepts, each refusal
// naming the field, and fills in the defaults. Every bound and choice is checked as a finetune
// job would check it, so a trial never starts with a value its run would refuse.
import { Value } from 'typebox/value';
import { HYPERPARAMETERS, appliesTo } from '../placement/hyperparameters.ts';
import { MAX_GRID_POINTS, extremes, gridCount, gridSize, type Search } from '@makam/shared/tuning/search';
import type { ParamSpace } from '@makam/shared/tuning/study-protocol.gen';
import type { Family } from '../contracts/hyperparameters.gen.ts';
import { ApiError } from '../errors.ts';
import { Hyperparameters, type SearchRequestT } from '../schemas/jobs.ts';

const refuse = (param: string, message: string): never => {
  throw new ApiError(400, 'invalid_search', message, param);
};

// Names come from the request: looked up as own properties only, so 'constructor' or
// '__proto__' is an unknown name, not something every object inherits.
function propertySchema(name: string): { type?: string } {
  const props = Hyperparameters.properties as Record<string, { type?: string }>;
  return Object.hasOwn(props, name) ? props[name]! : {};
}

function checkParam(family: Family, name: string, p: SearchRequestT['space'][string], fixed: Record<string, unknown>): ParamSpace {
  const at = `search.space.${name}`;
  if (!Object.hasOwn(HYPERPARAMETERS, name)) {
    const searchable = Object.keys(HYPERPARAMETERS).filter((n) => appliesTo(n, family));
    refuse(at, `'${name}' is not a hyperparameter; family '${family}' can search: ${searchable.join(', ')}`);
  }
  if (!appliesTo(name, family)) refuse(at, `hyperparameter '${name}' applies to ${HYPERPARAMETERS[name]!.families.join(', ')}, not to family '${family}'`);
  if (Object.hasOwn(fixed, name)) refuse(at, `'${name}' is both fixed in hyperparameters and searched; drop one of them`);
  let space: ParamSpace;
  if (p.type === 'categorical') {
    for (const f of ['low', 'high', 'step', 'log'] as const) if (p[f] !== undefined) refuse(`${at}.${f}`, `a categorical parameter takes only 'choices', not '${f}'`);
    if (!p.choices) return refuse(`${at}.choices`, "a categorical parameter needs 'choices', a list of values");
    const bad = p.choices.findIndex((c) => !['string', 'number', 'boolean'].includes(typeof c));
    if (bad >= 0) refuse(`${at}.choices.${bad}`, `${JSON.stringify(p.choices[bad])} is not a string, number or boolean`);
    if (new Set(p.choices.map((c) => JSON.stringify(c))).size !== p.choices.length) refuse(`${at}.choices`, 'choices must not repeat a value');
    space = { type: 'categorical', choices: p.choices as Array<string | number | boolean> };
  } else {
    if (p.choices !== undefined) refuse(`${at}.choices`, `an ${p.type} parameter takes low and high, not choices; use type 'categorical' for a list`);
    if (p.low === undefined || p.high === undefined) return refuse(`${at}.${p.low === undefined ? 'low' : 'high'}`, `an ${p.type} parameter needs 'low' and 'high'`);
    const schemaType = propertySchema(name).type;
    if (p.type === 'int') {
      if (schemaType !== 'integer') refuse(`${at}.type`, `'${name}' is not an integer hyperparameter; use type ${schemaType === 'number' ? "'float'" : "'categorical'"}`);
      for (const f of ['low', 'high', 'step'] as const) if (p[f] !== undefined && !Number.isInteger(p[f])) refuse(`${at}.${f}`, `${f} of an int parameter must be an integer`);
    } else if (schemaType !== 'number') {
      refuse(`${at}.type`, `'${name}' is not a real-valued hyperparameter; use type ${schemaType === 'integer' ? "'int'" : "'categorical'"}`);
    }
    if (p.type === 'float' ? p.low >= p.high : p.low > p.high) refuse(`${at}.high`, `the range is empty: high (${p.high}) must be above low (${p.low})`);
    if (p.log && p.low <= 0) refuse(`${at}.low`, 'a log-scale range needs low > 0');
    if (p.log && p.step !== undefined) refuse(`${at}.step`, 'a log-scale range takes no step');
    if (p.step !== undefined && p.type === 'int' && (p.high - p.low) % p.step !== 0) refuse(`${at}.step`, `high - low (${p.high - p.low}) must be a multiple of step (${p.step})`);
    space = { type: p.type, low: p.low, high: p.high, ...(p.step !== undefined ? { step: p.step } : {}), ...(p.log ? { log: true } : {}) };
  }
  for (const value of extremes(space)) {
    if (!Value.Check(propertySchema(name), value)) refuse(at, `${JSON.stringify(value)} is not a valid ${name}; see docs/hyperparameters.md for what it accepts`);
  }
  return space;
}

/** The search with its defaults, or a 400 naming what is wrong. */
export function checkSearch(family: Family, request: SearchRequestT, fixed: Record<string, unknown>): Search {
  const space: Record<string, ParamSpace> = {};
  // checkParam refuses any name that is not an own key of HYPERPARAMETERS (so never '__proto__').
  for (const [name, p] of Object.entries(request.space)) space[name] = checkParam(family, name, p, fixed);
  const metric = request.objective?.metric ?? 'macro_f1';
  const sampler = request.sampler ?? 'tpe';
  let trials = request.trials ?? 20;
  if (sampler === 'grid') {
    // Counted from low, high and step, never enumerated: the work is the same for any range.
    const unbounded = Object.entries(space).find(([, p]) => gridCount(p) === null);
    if (unbounded) refuse(`search.space.${unbounded[0]}`, 'a grid needs a finite set of values: give a float parameter a step (and no log), or list its choices');
    const size = gridSize(space);
    const shown = Number.isSafeInteger(size) ? String(size) : size.toExponential(2);
    if (size > MAX_GRID_POINTS) refuse('search.space', `the grid has ${shown} points, more than the ${MAX_GRID_POINTS} a tune job may run; widen the steps or list fewer choices`);
    if (size > trials) refuse('search.trials', `the grid has ${shown} points but trials is ${trials}; raise trials to ${shown} or shrink the space`);
    trials = size;
  }
  if (family === 'tfidf' && request.pruner !== undefined && request.pruner !== 'none' && (typeof request.pruner !== 'object' || request.pruner.type !== 'none')) {
    refuse('search.pruner', "tfidf trains in one step, so nothing can be pruned; use pruner 'none'");
  }
  const pruner = typeof request.pruner === 'object' ? request.pruner : { type: request.pruner ?? (family === 'tfidf' ? 'none' : 'median') };
  return {
    space,
    objective: { metric, direction: request.objective?.direction ?? (metric === 'validation_loss' ? 'minimize' : 'maximize') },
    trials,
    parallelism: request.parallelism ?? 2,
    sampler,
    pruner: pruner as Search['pruner'],
    seed: request.seed ?? 0,
  };
}

/**
 * The hyperparameters that need the most memory within the space, for placement: each searched
 * parameter in turn takes the extreme that raises the estimate most.
 */
export function largestCorner(space: Record<string, ParamSpace>, fixed: Record<string, unknown>, estimate: (hp: Record<string, unknown>) => number): Record<string, unknown> {
  const hp = { ...fixed };
  for (const [name, p] of Object.entries(space)) {
    let best: { value: unknown; bytes: number } | null = null;
    for (const value of extremes(p)) {
      const bytes = estimate({ ...hp, [name]: value });
      if (!best || bytes > best.bytes) best = { value, bytes };
    }
    hp[name] = best!.value;
  }
  return hp;
}
