// A trial's run reports each epoch's objective to its study, whose pruner may stop it. The tune
// coordinator makes one per trial job and the dispatcher hands it to the RunDriver, which sees only
// the RunReporter interface and keeps no trial or pruning state of its own.
import type { JobStore, MetricPoint, TrialInfo } from '@makam/shared/job-store';
import type { Logger } from '@makam/shared/logger';
import type { RunReporter } from '../run-driver.ts';
import type { StudyClient } from './study-client.ts';

export interface TrialReporterDeps {
  jobs: JobStore;
  study: StudyClient;
  log: Logger;
}

export class TrialReporter implements RunReporter {
  private readonly d: TrialReporterDeps;
  private readonly jobId: string;
  private readonly trial: TrialInfo;
  /** The run's last epoch: a prune there would only throw a finished result away. */
  private readonly lastEpoch: number;
  private pruned: boolean;

  constructor(deps: TrialReporterDeps, jobId: string, trial: TrialInfo, epochs: number) {
    this.d = deps;
    this.jobId = jobId;
    this.trial = trial;
    this.lastEpoch = epochs;
    // Pruned before a dispatcher restart: the run is stopped again, and reports no more.
    this.pruned = trial.pruned_at_epoch !== undefined;
  }

  get stopping(): boolean {
    return this.pruned;
  }

  /** The trial's objective at this epoch goes to its study; true when the pruner stops the run. */
  async report(point: MetricPoint): Promise<boolean> {
    if (this.pruned) return false;
    const { trial } = this;
    const value = point[trial.objective.metric];
    let prune: boolean;
    try {
      ({ prune } = await this.d.study.report(trial.study, trial.number, point.epoch, value));
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, 'trial metric not reported to its study; the trial goes on unpruned');
      return false;
    }
    // The last epoch's value still counts for the other trials, but stopping a run that has
    // trained all it will would only throw its result away.
    if (!prune || point.epoch >= this.lastEpoch) return false;
    this.pruned = true;
    await this.d.jobs.update(this.jobId, { trial: { ...trial, pruned_at_epoch: point.epoch } });
    await this.d.jobs.appendEvent(this.jobId, { type: 'log', level: 'info', message: `pruned at epoch ${point.epoch}: the study's pruner ranks ${trial.objective.metric} ${value} too low against the other trials` });
    this.d.log.info({ epoch: point.epoch, value }, 'trial pruned; stopping its run');
    return true;
  }
}
