// A small SVG line chart: linear axes with round ticks, one polyline per series, dots for sparse
// series (one point per epoch), a legend. Redrawn whole on each update (a few hundred points).
// Series can also be markers only (a scatter: objective per tune trial), dashed, or titled per point.

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
  /** Draw a dot at each point (for per-epoch series). */
  dots?: boolean;
  /** Draw the line between points (true); false leaves markers only. */
  line?: boolean;
  /** The marker's shape when dots are drawn (circle). */
  marker?: 'circle' | 'ring' | 'cross';
  /** An SVG stroke-dasharray for the line. */
  dash?: string;
  /** A tooltip for each point, in the order of `points`. */
  titles?: string[];
  /** Leave the series out of the legend. */
  noLegend?: boolean;
}

export interface ChartOptions {
  xLabel: string;
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
  /** Label only whole numbers on the x axis (trial numbers, epochs). */
  integerX?: boolean;
}

const NS = 'http://www.w3.org/2000/svg';

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

/** Round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A tick's label with as many decimals as the step between ticks needs (1.355, 1.36 for a 0.005 step). */
function label(v: number, step: number): string {
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  let digits = 0;
  while (digits < 8 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6 * 10 ** digits) digits++;
  return String(Number(v.toFixed(digits)));
}
const stepOf = (t: number[]) => (t.length > 1 ? t[1]! - t[0]! : 1);

export function renderChart(host: HTMLElement, series: Series[], options: ChartOptions): void {
  const width = options.width ?? 560;
  const height = options.height ?? 260;
  const m = { top: 28, right: 16, bottom: 40, left: 48 };
  const all = series.flatMap((s) => s.points);
  host.replaceChildren();
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'data-points': all.length });
  host.appendChild(svg);
  if (all.length === 0) {
    el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'chart-empty' }, svg).textContent = 'waiting for the first points…';
    return;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  let y0 = options.yMin ?? Math.min(...ys);
  let y1 = options.yMax ?? Math.max(...ys);
  if (y1 - y0 < 1e-9) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pad = (y1 - y0) * 0.05;
  if (options.yMin === undefined) y0 -= pad;
  if (options.yMax === undefined) y1 += pad;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
  const sy = (y: number) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);

  const grid = el('g', { class: 'chart-grid' }, svg);
  const yTicks = ticks(y0, y1);
  for (const t of yTicks) {
    el('line', { x1: m.left, x2: width - m.right, y1: sy(t), y2: sy(t) }, grid);
    el('text', { x: m.left - 6, y: sy(t) + 4, 'text-anchor': 'end' }, grid).textContent = label(t, stepOf(yTicks));
  }
  const xTicks = ticks(x0, x1, 6);
  for (const t of xTicks.filter((v) => !options.integerX || Number.isInteger(v))) {
    el('text', { x: sx(t), y: height - m.bottom + 16, 'text-anchor': 'middle' }, grid).textContent = label(t, stepOf(xTicks));
  }
  el('text', { x: (m.left + width - m.right) / 2, y: height - 6, 'text-anchor': 'middle', class: 'chart-axis' }, svg).textContent = options.xLabel;

  for (const s of series) {
    if (s.points.length === 0) continue;
    const g = el('g', { class: 'chart-series', 'data-series': s.name, 'data-points': s.points.length }, svg);
    if (s.line !== false) el('polyline', { points: s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2, ...(s.dash ? { 'stroke-dasharray': s.dash } : {}) }, g);
    if (s.dots || s.line === false || s.points.length === 1) {
      s.points.forEach(([x, y], i) => {
        const cx = sx(x);
        const cy = sy(y);
        let mark: SVGElement;
        if (s.marker === 'cross') {
          mark = el('path', { d: `M${cx - 4},${cy - 4}L${cx + 4},${cy + 4}M${cx - 4},${cy + 4}L${cx + 4},${cy - 4}`, stroke: s.color, 'stroke-width': 2, class: 'chart-point' }, g);
        } else if (s.marker === 'ring') {
          mark = el('circle', { cx, cy, r: 4, fill: '#fff', stroke: s.color, 'stroke-width': 2, class: 'chart-point' }, g);
        } else {
          mark = el('circle', { cx, cy, r: s.line === false ? 4 : 3, fill: s.color, class: 'chart-point' }, g);
        }
        const title = s.titles?.[i];
        if (title) el('title', {}, mark).textContent = title;
      });
    }
  }
  const legend = el('g', { class: 'chart-legend' }, svg);
  let lx = m.left + 4;
  for (const s of series) {
    if (s.noLegend) continue;
    el('rect', { x: lx, y: 4, width: 10, height: 10, fill: s.color, rx: 2 }, legend);
    const t = el('text', { x: lx + 14, y: 13 }, legend);
    t.textContent = s.name;
    lx += 22 + s.name.length * 6.5;
  }
}
