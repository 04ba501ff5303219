// The job's hyperparameters, defaults filled in, by name.
import { h, type Json } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

export function hyperparametersPanel(): Panel {
  const el = h('div');
  return {
    el,
    render: ({ job }: JobView) => {
      const entries = Object.entries((job.hyperparameters ?? {}) as Json).sort(([a], [b]) => a.localeCompare(b));
      el.replaceChildren(
        h('table', { class: 'table compact', 'data-testid': 'hyperparameters' }, ...entries.map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, typeof v === 'object' ? JSON.stringify(v) : String(v))))),
      );
    },
  };
}
