// A job page's state, shared by its panels: the job record, a tune job's trials, what the event
// stream has brought (live), and the files fetched once the job succeeded. Each panel owns its
// element and draws it from this state; the page (page.ts) decides when.
import type { Job, JobEvent, Trial } from '@makam/client/types';
import type { Json } from '../dom.ts';

export interface Live {
  attempt: number;
  epoch: number;
  step: number;
  total: number;
  trainLoss: Array<[number, number]>;
  validationLoss: Array<[number, number]>;
  accuracy: Array<[number, number]>;
  macroF1: Array<[number, number]>;
  weightedF1: Array<[number, number]>;
  /** The masked-LM phase (mlm_epochs): its loss per epoch (metrics phase "mlm"). */
  mlmLoss: Array<[number, number]>;
  /** The phase the latest progress event is of: "mlm" and "refit_mlm" count that phase's own epochs and steps. */
  phase: string;
  /** (server time, step) of the attempt's first progress event, for the ETA. */
  first: [number, number] | null;
  lastAt: number;
  log: JobEvent[];
}

/** A masked-LM phase's progress ("mlm", or "refit_mlm": the refit's own): it counts its own epochs and steps. */
export const maskedLm = (phase: string | undefined): boolean => phase === 'mlm' || phase === 'refit_mlm';

export const freshLive = (attempt = 0): Live => ({ attempt, epoch: 0, step: 0, total: 0, trainLoss: [], validationLoss: [], accuracy: [], macroF1: [], weightedF1: [], mlmLoss: [], phase: '', first: null, lastAt: 0, log: [] });

export interface JobView {
  readonly id: string;
  readonly isTune: boolean;
  readonly signal: AbortSignal;
  job: Job;
  trials: Trial[];
  live: Live;
  /** The archive's metrics.json, for results that do not carry the evaluation. */
  metricsJson: Json | null;
  /** The archive's README.md. */
  card: string | null;
}

/** A panel: its element, placed once by the page, and how it draws the current state. */
export interface Panel {
  el: HTMLElement;
  render(view: JobView): void;
}

/** Folds one event into the live state (a new attempt starts fresh curves) and the job record. */
export function applyEvent(view: JobView, e: JobEvent): void {
  const d = e.data;
  const at = Date.parse(e.created_at);
  if ((e.type === 'started' || e.type === 'progress' || e.type === 'metrics') && d.attempt !== view.live.attempt) view.live = { ...freshLive(d.attempt), log: view.live.log };
  const live = view.live;
  switch (e.type) {
    case 'started':
      live.total = d.total_steps;
      break;
    case 'progress':
      // The masked-LM phase counts its own steps: off the fine-tune's loss curve, and its own ETA.
      if (maskedLm(d.phase) !== maskedLm(live.phase)) live.first = null;
      live.phase = d.phase ?? '';
      live.epoch = d.epoch;
      live.step = d.step;
      live.total = d.total_steps;
      if (!maskedLm(d.phase)) live.trainLoss.push([d.step, d.train_loss]);
      live.first ??= [at, d.step];
      live.lastAt = at;
      break;
    case 'metrics':
      if (d.phase === 'mlm') {
        live.mlmLoss.push([d.epoch, d.mlm_loss]); // an epoch of the masked-LM phase: no validation figures
        break;
      }
      live.phase = '';
      live.epoch = d.epoch;
      live.validationLoss.push([d.step, d.validation_loss]);
      live.accuracy.push([d.epoch, d.accuracy]);
      live.macroF1.push([d.epoch, d.macro_f1]);
      live.weightedF1.push([d.epoch, d.weighted_f1]);
      view.job.metrics = { epoch: d.epoch, step: d.step, train_loss: d.train_loss, validation_loss: d.validation_loss, accuracy: d.accuracy, weighted_f1: d.weighted_f1, macro_f1: d.macro_f1 };
      break;
    case 'status':
      view.job.status = d.status;
      break;
  }
  if (e.type === 'status' || e.type === 'started' || e.type === 'log') live.log.push(e);
}
