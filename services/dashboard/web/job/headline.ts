// The headline metrics: the latest validation figures while a job trains, its final ones (a tune
// job's: its best trial's) once it succeeded.
import { bestMetricName, fmt, h, type Json } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

export function headlinePanel(): Panel {
  const el = h('div', { class: 'cards', 'data-testid': 'final-metrics' });
  return {
    el,
    render: ({ job, isTune }: JobView) => {
      const done = job.status === 'succeeded' && job.result;
      const source: Json | null = done ? job.result : job.metrics;
      const where = done ? `${isTune && job.best_trial ? `trial #${job.best_trial.number}, ` : ''}final, on the ${job.result.evaluated_on ?? 'validation'} split` : 'latest validation';
      const metric = (name: string, title: string) =>
        h('div', { class: 'card metric' }, h('div', { class: 'label' }, title), h('div', { class: 'value big', 'data-testid': `metric-${name}`, 'data-value': source?.[name] ?? '' }, fmt(source?.[name])));
      el.replaceChildren(
        h('div', { class: 'card-note muted' }, source ? where : isTune ? "the best trial's final metrics, when the search ends" : 'no metrics yet'),
        metric('accuracy', 'Accuracy'),
        metric('macro_f1', 'Macro F1'),
        metric('weighted_f1', 'Weighted F1'),
        metric('majority_baseline_accuracy', 'Majority baseline'),
      );
      if (done && job.result.best_epoch) el.append(h('div', { class: 'card-note muted' }, `best epoch ${job.result.best_epoch} of ${job.result.epochs_trained ?? '?'} by ${bestMetricName(job)}`));
    },
  };
}
