// The model card (the archive's README.md), rendered once the job succeeded.
import { h } from '../dom.ts';
import { renderMarkdown } from '../markdown.ts';
import type { JobView, Panel } from './view.ts';

export function modelCardPanel(): Panel & { missing(): void } {
  const el = h('div', { class: 'model-card', 'data-testid': 'model-card' });
  return {
    el,
    render: ({ job, card }: JobView) => {
      if (card) el.replaceChildren(renderMarkdown(card));
      else if (job.status === 'succeeded') el.replaceChildren(h('p', { class: 'muted' }, 'loading…'));
      else el.replaceChildren(h('p', { class: 'muted' }, 'The model card comes with the model, when the job succeeds.'));
    },
    /** The archive came without one. */
    missing: () => el.replaceChildren(h('p', { class: 'muted' }, 'No model card in the archive.')),
  };
}
