// The last 40 status, start and log events.
import { h } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

export function eventsLogPanel(): Panel {
  const el = h('ol', { class: 'log', 'data-testid': 'log' });
  return {
    el,
    render: ({ live }: JobView) => {
      el.replaceChildren(
        ...live.log.slice(-40).map((e) =>
          h('li', { class: `log-${e.type}` }, h('span', { class: 'muted' }, new Date(e.created_at).toLocaleTimeString()), ' ', e.type === 'status' ? `status → ${e.data.status}${e.data.message ? ` (${e.data.message})` : ''}` : e.type === 'started' ? `training on ${e.data.device}: ${e.data.total_steps} steps` : `${e.data.level}: ${e.data.message}`),
        ),
      );
    },
  };
}
