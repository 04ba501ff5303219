// What the CLI and the dashboard both read off a job or a trial.
import type { JobStatus, Trial } from './types.ts';

/** Statuses a job does not leave. */
export const TERMINAL: ReadonlySet<string> = new Set<JobStatus>(['succeeded', 'failed', 'cancelled', 'pruned']);

/** A trial's last reported epoch value (a pruned or failed trial has no objective). */
export function lastReported(trial: Pick<Trial, 'intermediate_values'>): number | null {
  const last = [...(trial.intermediate_values ?? [])].reverse().find((p) => typeof p.value === 'number');
  return last ? last.value : null;
}
