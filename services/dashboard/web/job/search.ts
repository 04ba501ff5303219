// A tune job's search: each parameter's importance (fANOVA, once the study is done), and the
// space with the study's settings.
import { formatParam } from '@makam/client/format';
import { TERMINAL } from '@makam/client/jobs';
import { h, type Json } from '../dom.ts';
import { studyOf } from './study.ts';
import type { JobView, Panel } from './view.ts';

export function importancesPanel(): Panel {
  const el = h('div', { 'data-testid': 'importances' });
  return {
    el,
    render: ({ job }: JobView) => {
      const imp = Object.entries((job.importances ?? {}) as Record<string, number>).sort((a, b) => b[1] - a[1]);
      el.replaceChildren(
        imp.length
          ? h(
              'div',
              { class: 'bars' },
              ...imp.map(([k, v]) => h('div', { class: 'bar-row', 'data-param': k }, h('span', { class: 'mono bar-name' }, k), h('span', { class: 'hbar' }, h('span', { class: 'hbar-fill', style: `width:${(100 * Math.max(0, Math.min(1, v))).toFixed(1)}%` })), h('span', { class: 'bar-value' }, v.toFixed(3)))),
            )
          : h('p', { class: 'muted' }, TERMINAL.has(job.status) ? 'No importances: they need at least two complete trials.' : "Optuna's fANOVA importances of each parameter, when the search ends."),
      );
    },
  };
}

function describeSpace(spec: Json): string {
  if (spec.type === 'categorical') return `one of ${(spec.choices as unknown[]).map(formatParam).join(', ')}`;
  const extra = [spec.log ? 'log' : '', spec.step !== undefined && spec.step !== null ? `step ${formatParam(spec.step)}` : ''].filter(Boolean).join(', ');
  return `${spec.type} ${formatParam(spec.low)} … ${formatParam(spec.high)}${extra ? ` (${extra})` : ''}`;
}

export function searchSpacePanel(): Panel {
  const el = h('div', { 'data-testid': 'search-space' });
  return {
    el,
    render: (view: JobView) => {
      const { search } = studyOf(view);
      const pruner = typeof search.pruner === 'string' ? { type: search.pruner } : (search.pruner ?? {});
      el.replaceChildren(
        h(
          'table',
          { class: 'table compact' },
          ...Object.entries((search.space ?? {}) as Json).map(([k, spec]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', {}, describeSpace(spec)))),
          h('tr', {}, h('td', {}, 'trials'), h('td', {}, `${search.trials}, ${search.parallelism ?? 1} at a time`)),
          h('tr', {}, h('td', {}, 'sampler'), h('td', {}, `${search.sampler ?? 'tpe'}${search.seed !== undefined && search.seed !== null ? `, seed ${search.seed}` : ''}`)),
          h('tr', {}, h('td', {}, 'pruner'), h('td', {}, Object.entries(pruner).map(([k, v]) => (k === 'type' ? String(v) : `${k} ${v}`)).join(', ') || 'median')),
        ),
      );
    },
  };
}
