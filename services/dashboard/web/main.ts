// makam's dashboard: the jobs list and a job page with live curves (server-sent events), the final
// metrics, the confusion matrix, per-class scores, hyperparameters and the model card. Plain DOM,
// no framework; routes are URL hashes (#/ and #/jobs/<id>) so the API serves static files only.
import { ApiError, followEvents, getJson, getKey, request, setKey, type StoredEvent } from './api.ts';
import { renderChart, type Series } from './chart.ts';
import { renderMarkdown } from './markdown.ts';

type Json = Record<string, any>;

// ------------------------------------------------------------------ DOM helpers

type Child = Node | string | number | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') node.addEventListener(k.replace(/^on/, ''), v as EventListener);
    else if (v === true) node.setAttribute(k, '');
    else if (v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}

const fmt = (v: unknown, digits = 3): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
const when = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : '–');
function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'pruned']);
const badge = (status: string) => h('span', { class: `badge badge-${status}`, 'data-testid': 'status' }, status);
const modelName = (j: Json): string => j.model?.name ?? (j.model?.config ? `${j.model.config.model_type ?? 'model'} from a config` : (j.model?.family ?? '–'));
const bestMetricName = (j: Json): string => j.result?.metric_for_best_model ?? j.hyperparameters?.metric_for_best_model ?? 'macro_f1';

function errorBox(err: unknown): HTMLElement {
  const e = err as ApiError;
  const hint = e.status === 401 ? ' Enter an API key above.' : '';
  return h('div', { class: 'error', 'data-testid': 'error' }, `${e.message ?? String(err)}.${hint}`);
}

// ------------------------------------------------------------------ header: the API key

function setupKeyForm(): void {
  const input = document.getElementById('api-key') as HTMLInputElement;
  const form = document.getElementById('key-form') as HTMLFormElement;
  input.value = getKey();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    route();
  });
}

// ------------------------------------------------------------------ router

const root = document.getElementById('app')!;
let current: AbortController | null = null;

function route(): void {
  current?.abort();
  current = new AbortController();
  const m = /^#\/jobs\/(job_[0-9a-z]+)/.exec(location.hash);
  if (m) void jobPage(m[1]!, current.signal);
  else void jobsPage(current.signal);
}

// ------------------------------------------------------------------ the jobs list

async function jobsPage(signal: AbortSignal): Promise<void> {
  document.title = 'Jobs · makam';
  const body = h('tbody');
  const status = h('div');
  root.replaceChildren(
    h('h1', {}, 'Jobs'),
    status,
    h('table', { class: 'table', 'data-testid': 'jobs' }, h('thead', {}, h('tr', {}, ...['Job', 'Status', 'Family', 'Model', 'Dataset', 'Progress', 'Best metric', 'Created'].map((c) => h('th', {}, c)))), body),
  );
  for (; !signal.aborted; await new Promise((r) => setTimeout(r, 5000))) {
    try {
      const page = await getJson<{ data: Json[] }>('/v1/jobs?limit=100', { signal });
      if (signal.aborted) return;
      status.replaceChildren();
      body.replaceChildren(
        ...page.data.map((j) => {
          const metric = bestMetricName(j);
          const final = j.result?.[metric];
          const latest = j.metrics?.[metric];
          const best = typeof final === 'number' ? `${metric} ${fmt(final)}` : typeof latest === 'number' ? `${metric} ${fmt(latest)} (latest)` : '–';
          const progress = j.progress ? `epoch ${j.progress.epoch}, ${Math.floor((100 * j.progress.step) / Math.max(1, j.progress.total_steps))}%` : '–';
          return h(
            'tr',
            { 'data-job': j.id },
            h('td', {}, h('a', { href: `#/jobs/${j.id}` }, j.id)),
            h('td', {}, badge(j.status)),
            h('td', {}, j.model?.family ?? '–'),
            h('td', { class: 'mono' }, modelName(j)),
            h('td', { class: 'mono' }, j.dataset),
            h('td', {}, progress),
            h('td', { 'data-testid': 'best' }, best),
            h('td', {}, when(j.created_at)),
          );
        }),
      );
      if (page.data.length === 0) body.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No jobs yet: submit one with `makam jobs submit` or POST /v1/jobs.')));
    } catch (err) {
      if (signal.aborted) return;
      status.replaceChildren(errorBox(err));
    }
  }
}

// ------------------------------------------------------------------ the job page

interface Live {
  attempt: number;
  epoch: number;
  step: number;
  total: number;
  trainLoss: Array<[number, number]>;
  validationLoss: Array<[number, number]>;
  accuracy: Array<[number, number]>;
  macroF1: Array<[number, number]>;
  weightedF1: Array<[number, number]>;
  /** (server time, step) of the attempt's first progress event, for the ETA. */
  first: [number, number] | null;
  lastAt: number;
  log: StoredEvent[];
}

const freshLive = (attempt = 0): Live => ({ attempt, epoch: 0, step: 0, total: 0, trainLoss: [], validationLoss: [], accuracy: [], macroF1: [], weightedF1: [], first: null, lastAt: 0, log: [] });

/** The evaluation the result reports (new worker: result.test; older: top level or metrics.json). */
function evaluationOf(result: Json | null, metricsJson: Json | null): { labels: string[]; matrix: number[][]; perClass: Json | null; split: string } | null {
  const ev = result?.test ?? metricsJson?.evaluation ?? null;
  const cm = ev?.confusion_matrix ?? result?.confusion_matrix ?? metricsJson?.confusion_matrix;
  const perClass = ev?.per_class ?? result?.per_class ?? metricsJson?.per_class ?? null;
  if (!cm && !perClass) return null;
  const split = ev?.split ?? result?.evaluated_on ?? 'validation';
  if (Array.isArray(cm)) return { labels: result?.labels ?? metricsJson?.labels ?? Object.keys(perClass ?? {}), matrix: cm, perClass, split };
  return { labels: cm?.labels ?? Object.keys(perClass ?? {}), matrix: cm?.matrix ?? [], perClass, split };
}

async function jobPage(id: string, signal: AbortSignal): Promise<void> {
  document.title = `${id} · makam`;
  let job: Json;
  try {
    job = await getJson<Json>(`/v1/jobs/${id}`, { signal });
  } catch (err) {
    if (!signal.aborted) root.replaceChildren(h('p', {}, h('a', { href: '#/' }, '← Jobs')), errorBox(err));
    return;
  }
  if (signal.aborted) return;
  let live = freshLive();
  let metricsJson: Json | null = null;
  let card: string | null = null;

  const header = h('div', { class: 'job-header' });
  const summary = h('div', { class: 'cards' });
  const progress = h('div', { class: 'progress-box' });
  const headline = h('div', { class: 'cards', 'data-testid': 'final-metrics' });
  const lossChart = h('div', { 'data-testid': 'loss-chart' });
  const metricChart = h('div', { 'data-testid': 'metric-chart' });
  const evaluation = h('div', { class: 'grid2' });
  const hyper = h('div');
  const cardBox = h('div', { class: 'model-card', 'data-testid': 'model-card' });
  const logBox = h('ol', { class: 'log', 'data-testid': 'log' });
  const tune = h('div');

  root.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← Jobs')),
    header,
    summary,
    progress,
    h('section', {}, h('h2', {}, 'Results'), headline),
    h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Loss'), lossChart), h('div', { class: 'panel' }, h('h3', {}, 'Validation metrics per epoch'), metricChart)),
    // Tune jobs (kind "tune") do not exist yet. When they do, their trials table (trial,
    // hyperparameters, objective, state) and a plot of the objective per trial with the best so
    // far go here, from GET /v1/jobs/:id/trials.
    tune,
    evaluation,
    h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Hyperparameters'), hyper), h('div', { class: 'panel' }, h('h3', {}, 'Events'), logBox)),
    h('section', { class: 'panel' }, h('h3', {}, 'Model card'), cardBox),
  );

  const renderHeader = () => {
    const cancellable = job.status === 'queued' || job.status === 'running';
    header.replaceChildren(
      h('h1', {}, id, ' ', badge(job.status)),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', 'data-testid': 'download', disabled: job.status !== 'succeeded', onclick: () => void download() }, 'Download model'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'cancel', disabled: !cancellable, onclick: () => void cancel() }, 'Cancel job'),
      ),
    );
    if (job.error) header.append(h('div', { class: 'error' }, `${job.error.code}: ${job.error.message}`));
    const started = job.started_at ? Date.parse(job.started_at) : null;
    const ended = job.finished_at ? Date.parse(job.finished_at) : null;
    const item = (k: string, v: Child, testid?: string) => h('div', { class: 'card' }, h('div', { class: 'label' }, k), h('div', { class: 'value', ...(testid ? { 'data-testid': testid } : {}) }, v));
    summary.replaceChildren(
      item('Model', `${job.model?.family ?? ''} · ${modelName(job)}`, 'model'),
      item('Dataset', job.dataset, 'dataset'),
      item('Class', `${job.resource_class}${job.worker ? ` · ${job.worker}` : ''}`),
      item('Attempts', job.attempts),
      item('Created', when(job.created_at)),
      item('Run time', started ? duration(((ended ?? Date.now()) - started) / 1000) : '–'),
    );
  };

  const renderProgress = () => {
    const epochs = Number(job.hyperparameters?.epochs ?? 0);
    const total = live.total || job.progress?.total_steps || 0;
    const step = live.step || job.progress?.step || 0;
    const epoch = live.epoch || job.progress?.epoch || 0;
    const fraction = total ? step / total : job.status === 'succeeded' ? 1 : 0;
    let eta = NaN;
    if (live.first && step > live.first[1] && !TERMINAL.has(job.status)) eta = ((live.lastAt - live.first[0]) / 1000 / (step - live.first[1])) * (total - step);
    progress.replaceChildren(
      h('div', { class: 'bar' }, h('div', { class: 'bar-fill', style: `width:${(100 * fraction).toFixed(1)}%` })),
      h(
        'div',
        { class: 'progress-text', 'data-testid': 'progress' },
        `epoch ${epoch}${epochs ? `/${epochs}` : ''} · step ${step}/${total || '?'} · ${Math.floor(100 * fraction)}%`,
        Number.isFinite(eta) ? ` · ETA ${duration(eta)}` : '',
        live.trainLoss.length ? ` · train loss ${fmt(live.trainLoss.at(-1)![1])}` : '',
      ),
    );
  };

  const renderHeadline = () => {
    const done = job.status === 'succeeded' && job.result;
    const source: Json | null = done ? job.result : job.metrics;
    const where = done ? `final, on the ${job.result.evaluated_on ?? 'validation'} split` : 'latest validation';
    const metric = (name: string, title: string) =>
      h('div', { class: 'card metric' }, h('div', { class: 'label' }, title), h('div', { class: 'value big', 'data-testid': `metric-${name}`, 'data-value': source?.[name] ?? '' }, fmt(source?.[name])));
    headline.replaceChildren(
      h('div', { class: 'card-note muted' }, source ? where : 'no metrics yet'),
      metric('accuracy', 'Accuracy'),
      metric('macro_f1', 'Macro F1'),
      metric('weighted_f1', 'Weighted F1'),
      metric('majority_baseline_accuracy', 'Majority baseline'),
    );
    if (done && job.result.best_epoch) headline.append(h('div', { class: 'card-note muted' }, `best epoch ${job.result.best_epoch} of ${job.result.epochs_trained ?? '?'} by ${bestMetricName(job)}`));
  };

  const renderCharts = () => {
    const lossSeries: Series[] = [
      { name: 'train loss', color: '#2563eb', points: live.trainLoss },
      { name: 'validation loss', color: '#dc2626', points: live.validationLoss, dots: true },
    ];
    renderChart(lossChart, lossSeries, { xLabel: 'step' });
    renderChart(
      metricChart,
      [
        { name: 'accuracy', color: '#059669', points: live.accuracy, dots: true },
        { name: 'macro F1', color: '#7c3aed', points: live.macroF1, dots: true },
        { name: 'weighted F1', color: '#d97706', points: live.weightedF1, dots: true },
      ],
      { xLabel: 'epoch', yMin: 0, yMax: 1 },
    );
  };

  const renderEvaluation = () => {
    const ev = evaluationOf(job.result, metricsJson);
    if (!ev) {
      evaluation.replaceChildren();
      return;
    }
    const { labels, matrix, perClass, split } = ev;
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
    evaluation.replaceChildren(
      h('div', { class: 'panel' }, h('h3', {}, `Confusion matrix (${split} split)`), cm, h('p', { class: 'muted small' }, 'Rows are true labels, columns predictions; shading is the share of each row.')),
      h('div', { class: 'panel' }, h('h3', {}, `Per-class scores (${split} split)`), pc),
    );
  };

  const renderHyper = () => {
    const entries = Object.entries((job.hyperparameters ?? {}) as Json).sort(([a], [b]) => a.localeCompare(b));
    hyper.replaceChildren(
      h('table', { class: 'table compact', 'data-testid': 'hyperparameters' }, ...entries.map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, typeof v === 'object' ? JSON.stringify(v) : String(v))))),
    );
  };

  const renderLog = () => {
    logBox.replaceChildren(
      ...live.log.slice(-40).map((e) =>
        h('li', { class: `log-${e.type}` }, h('span', { class: 'muted' }, new Date(e.created_at).toLocaleTimeString()), ' ', e.type === 'status' ? `status → ${e.data.status}${e.data.message ? ` (${e.data.message})` : ''}` : e.type === 'started' ? `training on ${e.data.device}: ${e.data.total_steps} steps` : `${e.data.level}: ${e.data.message}`),
      ),
    );
  };

  const renderTune = () => {
    tune.replaceChildren();
    if (job.kind === 'tune') tune.append(h('section', { class: 'panel', id: 'tune-trials' }, h('h3', {}, 'Trials'), h('p', { class: 'muted' }, 'The trials table and the objective per trial arrive with tune jobs.')));
  };

  const renderCard = () => {
    if (card) cardBox.replaceChildren(renderMarkdown(card));
    else if (job.status === 'succeeded') cardBox.replaceChildren(h('p', { class: 'muted' }, 'loading…'));
    else cardBox.replaceChildren(h('p', { class: 'muted' }, 'The model card comes with the model, when the job succeeds.'));
  };

  const renderAll = () => {
    renderHeader();
    renderProgress();
    renderHeadline();
    renderCharts();
    renderEvaluation();
    renderHyper();
    renderLog();
    renderTune();
    renderCard();
  };

  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (signal.aborted) return;
      renderProgress();
      renderCharts();
      renderLog();
    });
  };

  const loadFinal = async () => {
    job = await getJson<Json>(`/v1/jobs/${id}`, { signal });
    renderAll();
    if (job.status !== 'succeeded') return;
    const [m, c] = await Promise.allSettled([
      evaluationOf(job.result, null) ? Promise.resolve(null) : getJson<Json>(`/v1/jobs/${id}/artifacts/model/files/metrics.json`, { signal }),
      request(`/v1/jobs/${id}/artifacts/model/files/README.md`, { signal }).then((r) => r.text()),
    ]);
    if (signal.aborted) return;
    if (m.status === 'fulfilled' && m.value) metricsJson = m.value;
    card = c.status === 'fulfilled' ? c.value : null;
    if (!card) cardBox.replaceChildren(h('p', { class: 'muted' }, 'No model card in the archive.'));
    renderEvaluation();
    if (card) renderCard();
  };

  const cancel = async () => {
    try {
      job = await getJson<Json>(`/v1/jobs/${id}/cancel`, { method: 'POST', signal });
      renderHeader();
    } catch (err) {
      header.append(errorBox(err));
    }
  };

  const download = async () => {
    try {
      const res = await request(`/v1/jobs/${id}/artifacts/model`, { signal });
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: `${id}-model.tar.gz` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      header.append(errorBox(err));
    }
  };

  const onEvent = (e: StoredEvent) => {
    const d = e.data;
    const at = Date.parse(e.created_at);
    switch (e.type) {
      case 'started':
        if (d.attempt !== live.attempt) live = { ...freshLive(d.attempt), log: live.log };
        live.total = d.total_steps;
        break;
      case 'progress':
        if (d.attempt !== live.attempt) live = { ...freshLive(d.attempt), log: live.log };
        live.epoch = d.epoch;
        live.step = d.step;
        live.total = d.total_steps;
        live.trainLoss.push([d.step, d.train_loss]);
        live.first ??= [at, d.step];
        live.lastAt = at;
        break;
      case 'metrics':
        if (d.attempt !== live.attempt) live = { ...freshLive(d.attempt), log: live.log };
        live.epoch = d.epoch;
        live.validationLoss.push([d.step, d.validation_loss]);
        live.accuracy.push([d.epoch, d.accuracy]);
        live.macroF1.push([d.epoch, d.macro_f1]);
        live.weightedF1.push([d.epoch, d.weighted_f1]);
        job.metrics = { epoch: d.epoch, step: d.step, train_loss: d.train_loss, validation_loss: d.validation_loss, accuracy: d.accuracy, weighted_f1: d.weighted_f1, macro_f1: d.macro_f1 };
        if (!TERMINAL.has(job.status)) renderHeadline();
        break;
      case 'status':
        job.status = d.status;
        renderHeader();
        if (TERMINAL.has(d.status)) void loadFinal().catch(() => {});
        break;
    }
    if (e.type === 'status' || e.type === 'started' || e.type === 'log') live.log.push(e);
    schedule();
  };

  renderAll();
  if (job.status === 'succeeded') void loadFinal().catch(() => {});
  try {
    await followEvents(id, onEvent, signal);
  } catch (err) {
    if (!signal.aborted) header.append(errorBox(err));
  }
}

setupKeyForm();
window.addEventListener('hashchange', route);
route();
