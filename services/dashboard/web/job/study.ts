// What a tune job's panels read off its search and trials: the objective, the searched names in
// order, the best trial, and the value a trial's marker sits at.
import { lastReported } from '@makam/client/jobs';
import type { Trial } from '@makam/client/types';
import type { Json } from '../dom.ts';
import type { JobView } from './view.ts';

export interface Study {
  search: Json;
  metric: string;
  direction: string;
  /** The space's parameter names, then any other a trial reports. */
  names: string[];
  best: Json | null;
}

export function studyOf({ job, trials }: JobView): Study {
  const search = (job.search ?? {}) as Json;
  const names = Object.keys(search.space ?? {});
  for (const t of trials) for (const k of Object.keys(t.params ?? {})) if (!names.includes(k)) names.push(k);
  return {
    search,
    metric: search.objective?.metric ?? 'objective',
    direction: search.objective?.direction ?? 'maximize',
    names,
    best: (job.best_trial ?? job.study?.best ?? null) as Json | null,
  };
}

/** The value a trial's marker sits at: its objective, else its last reported epoch's. */
export const trialPoint = (t: Trial): number | null => (typeof t.value === 'number' ? t.value : lastReported(t));
