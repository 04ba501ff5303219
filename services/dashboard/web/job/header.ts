// The top of a job page: id, kind and status with the download and cancel buttons; on a trial's
// page, its tune job and parameters; then the summary cards.
import { client } from '../api.ts';
import { formatParam } from '@makam/client/format';
import { badge, duration, errorBox, fmtValue, h, kindOf, modelName, stateBadge, when, type Child, type Json } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

/** `redraw` redraws the header's neighbours too, after a cancel changed the record. */
export function headerPanel(view: JobView, redraw: () => void): Panel {
  const el = h('div', { class: 'job-header' });
  const { id, signal } = view;

  const cancel = async () => {
    try {
      view.job = await client.cancelJob(id, { signal });
      redraw();
    } catch (err) {
      el.append(errorBox(err));
    }
  };

  const download = async () => {
    try {
      const res = await client.modelArchive(id, { signal });
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: `${id}-model.tar.gz` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      el.append(errorBox(err));
    }
  };

  return {
    el,
    render: ({ job }) => {
      const cancellable = job.status === 'queued' || job.status === 'running';
      el.replaceChildren(
        h('h1', {}, id, ' ', kindOf(job) === 'finetune' ? '' : h('span', { class: `kind-tag kind-${kindOf(job)}`, 'data-testid': 'kind' }, kindOf(job)), ' ', badge(job.status)),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', 'data-testid': 'download', disabled: job.status !== 'succeeded', onclick: () => void download() }, 'Download model'),
          h('button', { type: 'button', class: 'danger', 'data-testid': 'cancel', disabled: !cancellable, onclick: () => void cancel() }, 'Cancel job'),
        ),
      );
      if (job.error) el.append(h('div', { class: 'error' }, `${job.error.code}: ${job.error.message}`));
    },
  };
}

/** On a trial's page: its tune job, number, parameters and state. */
export function trialOfPanel(): Panel {
  const el = h('div', { class: 'trial-of' });
  return {
    el,
    render: ({ job }) => {
      if (kindOf(job) !== 'trial' || !job.trial) {
        el.replaceChildren();
        return;
      }
      const t = job.trial as Json;
      const metric = t.objective?.metric ?? 'objective';
      el.replaceChildren(
        h(
          'div',
          { class: 'panel trial-panel', 'data-testid': 'trial-of' },
          h('div', {}, h('strong', {}, `Trial #${t.number}`), ' of tune job ', h('a', { href: `#/jobs/${job.parent}`, 'data-testid': 'parent-link', class: 'mono' }, job.parent ?? ''), ' · ', stateBadge(t.state), typeof t.value === 'number' ? ` · ${metric} ${fmtValue(t.value)}` : ''),
          h('div', { class: 'params', 'data-testid': 'trial-params' }, ...Object.entries((t.params ?? {}) as Json).map(([k, v]) => h('span', { class: 'chip mono' }, `${k} = ${formatParam(v)}`))),
          job.status === 'pruned' ? h('div', { class: 'muted small' }, `Stopped by the study's pruner${t.pruned_at_epoch ? ` after epoch ${t.pruned_at_epoch}` : ''}: its ${metric} lagged the other trials' at the same epoch. Not an error; it leaves no model.`) : '',
        ),
      );
    },
  };
}

/** The cards under the header: model, dataset, a tune job's objective and search, class, times. */
export function summaryPanel(): Panel {
  const el = h('div', { class: 'cards' });
  return {
    el,
    render: ({ job, isTune }) => {
      const started = job.started_at ? Date.parse(job.started_at) : null;
      const ended = job.finished_at ? Date.parse(job.finished_at) : null;
      const item = (k: string, v: Child, testid?: string) => h('div', { class: 'card' }, h('div', { class: 'label' }, k), h('div', { class: 'value', ...(testid ? { 'data-testid': testid } : {}) }, v));
      const search = job.search as Json | undefined;
      const pruner = search ? (typeof search.pruner === 'string' ? search.pruner : search.pruner?.type ?? 'median') : '';
      el.replaceChildren(
        item('Model', `${job.model?.family ?? ''} · ${modelName(job)}`, 'model'),
        item('Dataset', job.dataset, 'dataset'),
        search ? item('Objective', `${search.objective?.metric} (${search.objective?.direction})`, 'objective') : '',
        search ? item('Search', `${search.sampler ?? 'tpe'} · ${pruner} pruner · ${search.parallelism ?? 1} at a time`) : '',
        item('Class', `${job.resource_class}${job.worker ? ` · ${job.worker}` : ''}`),
        isTune ? '' : item('Attempts', job.attempts),
        item('Created', when(job.created_at)),
        item('Run time', started ? duration(((ended ?? Date.now()) - started) / 1000) : '–'),
      );
    },
  };
}
