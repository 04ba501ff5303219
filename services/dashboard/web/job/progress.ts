// The progress bar: a finetune job's (or trial's) epoch, step and ETA from the live events; a tune
// job's trials finished out of its budget.
import { TERMINAL } from '@makam/client/jobs';
import { duration, fmt, h, type Json } from '../dom.ts';
import { maskedLm, type JobView, type Panel } from './view.ts';

/** "3 of 8 trials finished: 2 complete · 1 pruned · 0 failed · 1 running". */
function studyText(study: Json | null | undefined, budget: number): string {
  const s = study ?? { complete: 0, pruned: 0, failed: 0, running: 0 };
  const finished = s.complete + s.pruned + s.failed;
  return `${finished} of ${s.trials ?? budget} trials finished: ${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · ${s.running} running`;
}

const bar = (fraction: number) => h('div', { class: 'bar' }, h('div', { class: 'bar-fill', style: `width:${(100 * fraction).toFixed(1)}%` }));

export function progressPanel(): Panel {
  const el = h('div', { class: 'progress-box' });
  return {
    el,
    render: ({ job, isTune, live }: JobView) => {
      if (isTune) {
        const study = job.study as Json | null;
        const budget = Number(study?.trials ?? job.search?.trials ?? 0);
        const finished = study ? study.complete + study.pruned + study.failed : 0;
        const fraction = budget ? finished / budget : 0;
        el.replaceChildren(bar(fraction), h('div', { class: 'progress-text', 'data-testid': 'study-progress' }, studyText(study, budget)));
        return;
      }
      const mlm = maskedLm(live.phase);
      const epochs = Number((mlm ? job.hyperparameters?.mlm_epochs : job.hyperparameters?.epochs) ?? 0);
      const total = live.total || job.progress?.total_steps || 0;
      const step = live.step || job.progress?.step || 0;
      const epoch = live.epoch || job.progress?.epoch || 0;
      const fraction = total ? step / total : job.status === 'succeeded' ? 1 : 0;
      let eta = NaN;
      if (live.first && step > live.first[1] && !TERMINAL.has(job.status)) eta = ((live.lastAt - live.first[0]) / 1000 / (step - live.first[1])) * (total - step);
      el.replaceChildren(
        bar(fraction),
        h(
          'div',
          { class: 'progress-text', 'data-testid': 'progress' },
          `${mlm ? `${live.phase === 'refit_mlm' ? 'refit: ' : ''}masked-LM epoch` : 'epoch'} ${epoch}${epochs ? `/${epochs}` : ''} · step ${step}/${total || '?'} · ${Math.floor(100 * fraction)}%`,
          Number.isFinite(eta) ? ` · ETA ${duration(eta)}` : '',
          !mlm && live.trainLoss.length ? ` · train loss ${fmt(live.trainLoss.at(-1)![1])}` : '',
        ),
      );
    },
  };
}
