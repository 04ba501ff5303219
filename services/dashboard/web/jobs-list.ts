// The jobs list: every job with its kind, status, progress and best metric, refreshed every five
// seconds; a tune job's trials shown or hidden (the choice kept in localStorage).
import type { JobList } from '@makam/client/types';
import { client } from './api.ts';
import { TERMINAL } from '@makam/client/jobs';
import { badge, bestMetricName, errorBox, fmt, fmtValue, h, kindOf, modelName, when, type Json } from './dom.ts';

const SHOW_TRIALS = 'makam.showTrials';

export async function jobsPage(root: HTMLElement, signal: AbortSignal): Promise<void> {
  document.title = 'Jobs · makam';
  const body = h('tbody');
  const status = h('div');
  let page: JobList | null = null;
  const showTrials = h('input', { type: 'checkbox', 'data-testid': 'show-trials' });
  showTrials.checked = localStorage.getItem(SHOW_TRIALS) !== 'false';
  showTrials.addEventListener('change', () => {
    localStorage.setItem(SHOW_TRIALS, String(showTrials.checked));
    render();
  });
  root.replaceChildren(
    h('div', { class: 'list-header' }, h('h1', {}, 'Jobs'), h('label', { class: 'muted small' }, showTrials, ' show the trials of tune jobs')),
    status,
    h('table', { class: 'table', 'data-testid': 'jobs' }, h('thead', {}, h('tr', {}, ...['Job', 'Kind', 'Status', 'Family', 'Model', 'Dataset', 'Progress', 'Best metric', 'Created'].map((c) => h('th', {}, c)))), body),
  );
  const render = () => {
    if (!page) return;
    const rows = page.data.filter((j) => showTrials.checked || kindOf(j) !== 'trial');
    body.replaceChildren(
      ...rows.map((j) => {
        const kind = kindOf(j);
        let progress = j.progress ? `epoch ${j.progress.epoch}, ${Math.floor((100 * j.progress.step) / Math.max(1, j.progress.total_steps))}%` : '–';
        let best: string;
        if (kind === 'tune') {
          const s = j.study;
          const metric = j.search?.objective?.metric ?? 'objective';
          progress = s ? `${s.complete + s.pruned + s.failed}/${s.trials} trials${s.running ? `, ${s.running} running` : ''}` : '–';
          best = s?.best ? `${metric} ${fmtValue(s.best.value)}${TERMINAL.has(j.status) ? '' : ' (so far)'}` : '–';
        } else {
          const metric = bestMetricName(j);
          const final = j.result?.[metric];
          const latest = (j.metrics as Json | null)?.[metric];
          best = typeof final === 'number' ? `${metric} ${fmt(final)}` : typeof latest === 'number' ? `${metric} ${fmt(latest)} (latest)` : '–';
        }
        const kindCell =
          kind === 'trial' && j.parent
            ? h('td', { 'data-testid': 'kind', class: 'nowrap' }, `trial #${j.trial?.number ?? '?'} of `, h('a', { href: `#/jobs/${j.parent}`, title: j.parent, class: 'mono' }, `…${String(j.parent).slice(-6)}`))
            : h('td', { 'data-testid': 'kind' }, kind === 'tune' ? h('span', { class: 'kind-tune' }, 'tune') : kind);
        return h(
          'tr',
          { 'data-job': j.id, 'data-kind': kind, class: kind === 'trial' ? 'trial-row' : '' },
          h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.id)),
          kindCell,
          h('td', {}, badge(j.status)),
          h('td', {}, j.model?.family ?? '–'),
          h('td', { class: 'mono' }, modelName(j)),
          h('td', { class: 'mono' }, j.dataset),
          h('td', { 'data-testid': 'progress' }, progress),
          h('td', { 'data-testid': 'best' }, best),
          h('td', {}, when(j.created_at)),
        );
      }),
    );
    if (rows.length === 0) body.replaceChildren(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No jobs yet: submit one with `makam jobs submit` or POST /v1/jobs.')));
  };
  for (; !signal.aborted; await new Promise((r) => setTimeout(r, 5000))) {
    try {
      page = await client.listJobs({ limit: 100 }, { signal });
      if (signal.aborted) return;
      status.replaceChildren();
      render();
    } catch (err) {
      if (signal.aborted) return;
      status.replaceChildren(errorBox(err));
    }
  }
}
