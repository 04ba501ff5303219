// The confusion matrix and per-class scores of the split the result was evaluated on.
import { fmt, h, type Json } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

/** The evaluation the result reports (new worker: result.test; older: top level or metrics.json). */
export function evaluationOf(result: Json | null, metricsJson: Json | null): { labels: string[]; matrix: number[][]; perClass: Json | null; split: string } | null {
  const ev = result?.test ?? metricsJson?.evaluation ?? null;
  const cm = ev?.confusion_matrix ?? result?.confusion_matrix ?? metricsJson?.confusion_matrix;
  const perClass = ev?.per_class ?? result?.per_class ?? metricsJson?.per_class ?? null;
  if (!cm && !perClass) return null;
  const split = ev?.split ?? result?.evaluated_on ?? 'validation';
  if (Array.isArray(cm)) return { labels: result?.labels ?? metricsJson?.labels ?? Object.keys(perClass ?? {}), matrix: cm, perClass, split };
  return { labels: cm?.labels ?? Object.keys(perClass ?? {}), matrix: cm?.matrix ?? [], perClass, split };
}

function confusionMatrix(labels: string[], matrix: number[][]): HTMLElement {
  const cm = h('table', { class: 'heatmap', 'data-testid': 'confusion-matrix' });
  cm.append(h('tr', {}, h('th', { class: 'corner' }, 'true \\ predicted'), ...labels.map((l) => h('th', { class: 'col' }, l))));
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    cm.append(
      h(
        'tr',
        {},
        h('th', {}, labels[i] ?? String(i)),
        ...row.map((n, j) => {
          const share = n / total;
          const color = i === j ? '5, 150, 105' : '220, 38, 38';
          return h('td', { style: `background: rgba(${color}, ${(0.08 + 0.85 * share).toFixed(3)}); color: ${share > 0.55 ? '#fff' : 'inherit'}`, title: `${labels[i]} → ${labels[j]}: ${n} (${(100 * share).toFixed(0)}% of ${labels[i]})` }, String(n));
        }),
      ),
    );
  });
  return cm;
}

function perClassTable(labels: string[], perClass: Json | null): HTMLElement {
  const pc = h('table', { class: 'table', 'data-testid': 'per-class' });
  pc.append(h('tr', {}, ...['Label', 'Precision', 'Recall', 'F1', 'Support'].map((c) => h('th', {}, c))));
  // In label order (the matrix's), whatever order the result's object kept.
  const scores = (perClass ?? {}) as Record<string, Json>;
  const order = [...labels.filter((l) => l in scores), ...Object.keys(scores).filter((l) => !labels.includes(l))];
  for (const [label, s] of order.map((l) => [l, scores[l]!] as const)) {
    pc.append(
      h(
        'tr',
        { 'data-label': label },
        h('td', {}, label),
        h('td', {}, fmt(s.precision)),
        h('td', {}, fmt(s.recall)),
        h('td', {}, h('span', { class: 'minibar', style: `width:${Math.round(60 * (s.f1 ?? 0))}px` }), ' ', fmt(s.f1)),
        h('td', {}, s.support ?? '–'),
      ),
    );
  }
  return pc;
}

export function evaluationPanel(): Panel {
  const el = h('div', { class: 'grid2' });
  return {
    el,
    render: ({ job, metricsJson }: JobView) => {
      const ev = evaluationOf(job.result, metricsJson);
      if (!ev) {
        el.replaceChildren();
        return;
      }
      const { labels, matrix, perClass, split } = ev;
      el.replaceChildren(
        h('div', { class: 'panel' }, h('h3', {}, `Confusion matrix (${split} split)`), confusionMatrix(labels, matrix), h('p', { class: 'muted small' }, 'Rows are true labels, columns predictions; shading is the share of each row.')),
        h('div', { class: 'panel' }, h('h3', {}, `Per-class scores (${split} split)`), perClassTable(labels, perClass)),
      );
    },
  };
}
