// A tune job's trials, one row each: state, job status, each searched value, the objective (or the
// last epoch's, for a pruned or failed trial), epochs and run time; the best starred.
import { formatParam } from '@makam/client/format';
import { badge, duration, fmtValue, h, stateBadge } from '../dom.ts';
import { studyOf, trialPoint } from './study.ts';
import type { JobView, Panel } from './view.ts';

export function trialsTablePanel(): Panel {
  const el = h('div', { class: 'scroll-x' });
  return {
    el,
    render: (view: JobView) => {
      const { job, trials } = view;
      const { metric, names, best } = studyOf(view);
      const epochs = Number(job.hyperparameters?.epochs ?? 0);
      const table = h('table', { class: 'table compact', 'data-testid': 'trials' });
      table.append(h('thead', {}, h('tr', {}, ...['Trial', 'State', 'Job status', ...names, metric, 'Epochs', 'Run time'].map((c) => h('th', { class: names.includes(c) ? 'mono' : '' }, c)))));
      const body = h('tbody');
      for (const t of [...trials].sort((a, b) => a.number - b.number)) {
        const isBest = best !== null && t.number === best.number;
        const started = t.started_at ? Date.parse(t.started_at) : null;
        const ended = t.finished_at ? Date.parse(t.finished_at) : null;
        const shown = t.value ?? null;
        const last = trialPoint(t);
        body.append(
          h(
            'tr',
            { 'data-trial': t.number, 'data-state': t.state, 'data-status': t.status, class: isBest ? 'best-row' : '' },
            h('td', {}, h('a', { href: `#/jobs/${t.job_id}`, title: t.job_id }, `#${t.number}`), isBest ? h('span', { class: 'star', title: 'the best trial' }, ' ★') : ''),
            h('td', {}, stateBadge(t.state)),
            h('td', {}, badge(t.status)),
            ...names.map((k) => h('td', { class: 'mono', 'data-param': k }, k in (t.params ?? {}) ? formatParam(t.params[k]) : '–')),
            h('td', { 'data-testid': 'trial-value', 'data-value': shown ?? '' }, shown !== null ? fmtValue(shown) : last !== null ? h('span', { class: 'muted', title: 'the last epoch reported' }, `(${fmtValue(last)})`) : '–'),
            h('td', { 'data-testid': 'trial-epochs' }, `${t.intermediate_values.length}${epochs ? `/${epochs}` : ''}`),
            h('td', {}, started ? duration(((ended ?? Date.now()) - started) / 1000) : '–'),
          ),
        );
        if (t.error && t.state === 'fail') body.append(h('tr', { class: 'trial-error' }, h('td', { colspan: names.length + 6, class: 'muted small' }, `#${t.number}: ${t.error.code}: ${t.error.message}`)));
      }
      table.append(body);
      el.replaceChildren(trials.length ? table : h('p', { class: 'muted' }, 'No trial yet: the study asks for the first when the search starts.'));
    },
  };
}
