// A tune job's best trial (so far): its objective, a link to its page, its parameters.
import { formatParams } from '@makam/client/format';
import { TERMINAL } from '@makam/client/jobs';
import { fmtValue, h } from '../dom.ts';
import { studyOf } from './study.ts';
import type { JobView, Panel } from './view.ts';

export function studyBestPanel(): Panel {
  const el = h('div', { 'data-testid': 'study-best' });
  return {
    el,
    render: (view: JobView) => {
      const { metric, direction, best } = studyOf(view);
      el.replaceChildren(
        h('h2', {}, TERMINAL.has(view.job.status) ? 'Best trial' : 'Best so far'),
        h(
          'div',
          { class: 'cards' },
          best
            ? h(
                'div',
                { class: 'card best-card' },
                h('div', { class: 'label' }, `${metric} (${direction})`),
                h('div', { class: 'value big', 'data-testid': 'best-value', 'data-value': best.value }, fmtValue(best.value)),
                h('div', { class: 'small' }, h('a', { href: `#/jobs/${best.job_id}`, 'data-testid': 'best-link' }, `trial #${best.number}`), ' · ', h('span', { class: 'mono', 'data-testid': 'best-params' }, formatParams(best.params))),
              )
            : h('div', { class: 'card-note muted' }, 'no trial has completed yet'),
        ),
      );
    },
  };
}
