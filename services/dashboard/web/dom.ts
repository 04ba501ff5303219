// What every page of the dashboard draws with: an element builder, badges, the error box, and the
// shared formatters (@makam/client/format) with the dashboard's '–' for a missing value.
import { formatDuration, formatMetric, formatValue } from '@makam/client/format';
import type { Job } from '@makam/client/types';
import type { ApiError } from '@makam/client/http';

export type Json = Record<string, any>;
export type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') node.addEventListener(k.replace(/^on/, ''), v as EventListener);
    else if (v === true) node.setAttribute(k, '');
    else if (v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

const NONE = '–';
export const fmt = (v: unknown, digits = 3): string => formatMetric(v, digits, NONE);
export const fmtValue = (v: unknown): string => formatValue(v, NONE);
export const duration = (seconds: number): string => formatDuration(seconds, NONE);
export const when = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : NONE);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const badge = (status: string) => h('span', { class: `badge badge-${status}`, 'data-testid': 'status' }, status);
export const stateBadge = (state: string) => h('span', { class: `badge badge-state-${state}`, 'data-testid': 'trial-state' }, state);
export const STATE_COLORS: Record<'running' | 'complete' | 'pruned' | 'fail', string> = { complete: '#059669', pruned: '#7c3aed', fail: '#dc2626', running: '#2563eb' };

export const kindOf = (j: Job | Json): string => j.kind ?? 'finetune';
export const modelName = (j: Job | Json): string => j.model?.name ?? (j.model?.config ? `${j.model.config.model_type ?? 'model'} from a config` : (j.model?.family ?? NONE));
export const bestMetricName = (j: Job | Json): string => j.result?.metric_for_best_model ?? j.hyperparameters?.metric_for_best_model ?? 'macro_f1';

export function errorBox(err: unknown): HTMLElement {
  const e = err as ApiError;
  const hint = e.status === 401 ? ' Enter an API key above.' : '';
  return h('div', { class: 'error', 'data-testid': 'error' }, `${e.message ?? String(err)}.${hint}`);
}
