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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'pruned']);
const badge = (status: string) => h('span', { class: `badge badge-${status}`, 'data-testid': 'status' }, status);
const modelName = (j: Json): string => j.model?.name ?? (j.model?.config ? `${j.model.config.model_type ?? 'model'} from a config` : (j.model?.family ?? '–'));
const bestMetricName = (j: Json): string => j.result?.metric_for_best_model ?? j.hyperparameters?.metric_for_best_model ?? 'macro_f1';

// ------------------------------------------------------------------ tune jobs and their trials

/** One row of GET /v1/jobs/:id/trials. */
interface Trial {
  number: number;
  job_id: string;
  status: string;
  state: 'running' | 'complete' | 'pruned' | 'fail';
  params: Record<string, unknown>;
  value: number | null;
  intermediate_values: Array<{ epoch: number; value: number | null }>;
  result: Json | null;
  error: { code: string; message: string } | null;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
}

const STATE_COLORS: Record<Trial['state'], string> = { complete: '#059669', pruned: '#7c3aed', fail: '#dc2626', running: '#2563eb' };
const stateBadge = (state: string) => h('span', { class: `badge badge-state-${state}`, 'data-testid': 'trial-state' }, state);
const kindOf = (j: Json): string => j.kind ?? 'finetune';

/** A searched value: whole numbers as they are, small floats in exponent form (learning rates). */
function fmtParam(v: unknown): string {
  if (typeof v !== 'number') return typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (Number.isInteger(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}
const fmtValue = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(4))) : '–');
const paramsText = (params: Record<string, unknown> | null | undefined): string =>
  Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${fmtParam(v)}`)
    .join(', ');

/** "3 of 8 trials finished: 2 complete · 1 pruned · 0 failed · 1 running". */
function studyText(study: Json | null | undefined, budget: number): string {
  const s = study ?? { complete: 0, pruned: 0, failed: 0, running: 0 };
  const finished = s.complete + s.pruned + s.failed;
  return `${finished} of ${s.trials ?? budget} trials finished: ${s.complete} complete · ${s.pruned} pruned · ${s.failed} failed · ${s.running} running`;
}

/** The value a trial's marker sits at: its objective, else its last reported epoch's. */
function trialPoint(t: Trial): number | null {
  if (typeof t.value === 'number') return t.value;
  const last = [...t.intermediate_values].reverse().find((p) => typeof p.value === 'number');
  return last ? last.value : null;
}

/** The best-so-far line by trial number over complete trials, drawn as steps. */
function bestSoFar(trials: Trial[], direction: string): Array<[number, number]> {
  const better = (a: number, b: number) => (direction === 'maximize' ? a > b : a < b);
  const points: Array<[number, number]> = [];
  let best: number | null = null;
  const sorted = [...trials].sort((a, b) => a.number - b.number);
  for (const t of sorted) {
    if (t.state !== 'complete' || typeof t.value !== 'number') continue;
    if (best === null) best = t.value;
    else if (better(t.value, best)) {
      points.push([t.number, best]);
      best = t.value;
    }
    points.push([t.number, best]);
  }
  const last = sorted.at(-1)?.number;
  if (best !== null && last !== undefined && last > points.at(-1)![0]) points.push([last, best]);
  return points;
}

function describeSpace(spec: Json): string {
  if (spec.type === 'categorical') return `one of ${(spec.choices as unknown[]).map(fmtParam).join(', ')}`;
  const extra = [spec.log ? 'log' : '', spec.step !== undefined && spec.step !== null ? `step ${fmtParam(spec.step)}` : ''].filter(Boolean).join(', ');
  return `${spec.type} ${fmtParam(spec.low)} … ${fmtParam(spec.high)}${extra ? ` (${extra})` : ''}`;
}

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

const SHOW_TRIALS = 'makam.showTrials';

async function jobsPage(signal: AbortSignal): Promise<void> {
  document.title = 'Jobs · makam';
  const body = h('tbody');
  const status = h('div');
  let page: { data: Json[] } | null = null;
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
          const latest = j.metrics?.[metric];
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
      page = await getJson<{ data: Json[] }>('/v1/jobs?limit=100', { signal });
      if (signal.aborted) return;
      status.replaceChildren();
      render();
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
  const isTune = kindOf(job) === 'tune';
  let trials: Trial[] = [];

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
  // A trial's tune job; a tune job's study: best so far, trials plot, trials table, importances.
  const trialOf = h('div', { class: 'trial-of' });
  const studyBest = h('div', { 'data-testid': 'study-best' });
  const trialsChart = h('div', { 'data-testid': 'trials-chart' });
  const curvesChart = h('div', { 'data-testid': 'trial-curves' });
  const trialsTable = h('div', { class: 'scroll-x' });
  const importances = h('div', { 'data-testid': 'importances' });
  const space = h('div', { 'data-testid': 'search-space' });
  const tune = h(
    'div',
    { id: 'tune-trials' },
    h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Objective per trial'), trialsChart), h('div', { class: 'panel' }, h('h3', {}, 'Objective per epoch, each trial'), curvesChart)),
    h('section', { class: 'panel' }, h('h3', {}, 'Trials'), trialsTable),
    h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Parameter importances'), importances), h('div', { class: 'panel' }, h('h3', {}, 'Search'), space)),
  );

  root.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← Jobs')),
    header,
    trialOf,
    summary,
    progress,
    isTune ? h('section', {}, studyBest) : '',
    h('section', {}, h('h2', {}, isTune ? "Results (the best trial's)" : 'Results'), headline),
    isTune ? tune : h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Loss'), lossChart), h('div', { class: 'panel' }, h('h3', {}, 'Validation metrics per epoch'), metricChart)),
    evaluation,
    h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, isTune ? 'Hyperparameters (fixed; the searched ones are in the trials)' : 'Hyperparameters'), hyper), h('div', { class: 'panel' }, h('h3', {}, 'Events'), logBox)),
    h('section', { class: 'panel' }, h('h3', {}, 'Model card'), cardBox),
  );

  const renderHeader = () => {
    const cancellable = job.status === 'queued' || job.status === 'running';
    header.replaceChildren(
      h('h1', {}, id, ' ', kindOf(job) === 'finetune' ? '' : h('span', { class: `kind-tag kind-${kindOf(job)}`, 'data-testid': 'kind' }, kindOf(job)), ' ', badge(job.status)),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', 'data-testid': 'download', disabled: job.status !== 'succeeded', onclick: () => void download() }, 'Download model'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'cancel', disabled: !cancellable, onclick: () => void cancel() }, 'Cancel job'),
      ),
    );
    if (job.error) header.append(h('div', { class: 'error' }, `${job.error.code}: ${job.error.message}`));
    renderTrialOf();
    const started = job.started_at ? Date.parse(job.started_at) : null;
    const ended = job.finished_at ? Date.parse(job.finished_at) : null;
    const item = (k: string, v: Child, testid?: string) => h('div', { class: 'card' }, h('div', { class: 'label' }, k), h('div', { class: 'value', ...(testid ? { 'data-testid': testid } : {}) }, v));
    const search = job.search as Json | undefined;
    const pruner = search ? (typeof search.pruner === 'string' ? search.pruner : search.pruner?.type ?? 'median') : '';
    summary.replaceChildren(
      item('Model', `${job.model?.family ?? ''} · ${modelName(job)}`, 'model'),
      item('Dataset', job.dataset, 'dataset'),
      search ? item('Objective', `${search.objective?.metric} (${search.objective?.direction})`, 'objective') : '',
      search ? item('Search', `${search.sampler ?? 'tpe'} · ${pruner} pruner · ${search.parallelism ?? 1} at a time`) : '',
      item('Class', `${job.resource_class}${job.worker ? ` · ${job.worker}` : ''}`),
      isTune ? '' : item('Attempts', job.attempts),
      item('Created', when(job.created_at)),
      item('Run time', started ? duration(((ended ?? Date.now()) - started) / 1000) : '–'),
    );
  };

  /** On a trial's page: its tune job, number, parameters and state. */
  const renderTrialOf = () => {
    if (kindOf(job) !== 'trial' || !job.trial) {
      trialOf.replaceChildren();
      return;
    }
    const t = job.trial as Json;
    const metric = t.objective?.metric ?? 'objective';
    trialOf.replaceChildren(
      h(
        'div',
        { class: 'panel trial-panel', 'data-testid': 'trial-of' },
        h('div', {}, h('strong', {}, `Trial #${t.number}`), ' of tune job ', h('a', { href: `#/jobs/${job.parent}`, 'data-testid': 'parent-link', class: 'mono' }, job.parent), ' · ', stateBadge(t.state), typeof t.value === 'number' ? ` · ${metric} ${fmtValue(t.value)}` : ''),
        h('div', { class: 'params', 'data-testid': 'trial-params' }, ...Object.entries((t.params ?? {}) as Json).map(([k, v]) => h('span', { class: 'chip mono' }, `${k} = ${fmtParam(v)}`))),
        job.status === 'pruned' ? h('div', { class: 'muted small' }, `Stopped by the study's pruner${t.pruned_at_epoch ? ` after epoch ${t.pruned_at_epoch}` : ''}: its ${metric} lagged the other trials' at the same epoch. Not an error; it leaves no model.`) : '',
      ),
    );
  };

  const renderProgress = () => {
    if (isTune) {
      const study = job.study as Json | null;
      const budget = Number(study?.trials ?? job.search?.trials ?? 0);
      const finished = study ? study.complete + study.pruned + study.failed : 0;
      const fraction = budget ? finished / budget : 0;
      progress.replaceChildren(
        h('div', { class: 'bar' }, h('div', { class: 'bar-fill', style: `width:${(100 * fraction).toFixed(1)}%` })),
        h('div', { class: 'progress-text', 'data-testid': 'study-progress' }, studyText(study, budget)),
      );
      return;
    }
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
    const where = done ? `${isTune && job.best_trial ? `trial #${job.best_trial.number}, ` : ''}final, on the ${job.result.evaluated_on ?? 'validation'} split` : 'latest validation';
    const metric = (name: string, title: string) =>
      h('div', { class: 'card metric' }, h('div', { class: 'label' }, title), h('div', { class: 'value big', 'data-testid': `metric-${name}`, 'data-value': source?.[name] ?? '' }, fmt(source?.[name])));
    headline.replaceChildren(
      h('div', { class: 'card-note muted' }, source ? where : isTune ? "the best trial's final metrics, when the search ends" : 'no metrics yet'),
      metric('accuracy', 'Accuracy'),
      metric('macro_f1', 'Macro F1'),
      metric('weighted_f1', 'Weighted F1'),
      metric('majority_baseline_accuracy', 'Majority baseline'),
    );
    if (done && job.result.best_epoch) headline.append(h('div', { class: 'card-note muted' }, `best epoch ${job.result.best_epoch} of ${job.result.epochs_trained ?? '?'} by ${bestMetricName(job)}`));
  };

  const renderCharts = () => {
    if (isTune) return;
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
      { xLabel: 'epoch', yMin: 0, yMax: 1, integerX: true },
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
    if (!isTune) return;
    const search = (job.search ?? {}) as Json;
    const metric: string = search.objective?.metric ?? 'objective';
    const direction: string = search.objective?.direction ?? 'maximize';
    const names = Object.keys(search.space ?? {});
    for (const t of trials) for (const k of Object.keys(t.params ?? {})) if (!names.includes(k)) names.push(k);
    const best = (job.best_trial ?? job.study?.best ?? null) as Json | null;

    // Best so far.
    studyBest.replaceChildren(
      h('h2', {}, TERMINAL.has(job.status) ? 'Best trial' : 'Best so far'),
      h(
        'div',
        { class: 'cards' },
        best
          ? h(
              'div',
              { class: 'card best-card' },
              h('div', { class: 'label' }, `${metric} (${direction})`),
              h('div', { class: 'value big', 'data-testid': 'best-value', 'data-value': best.value }, fmtValue(best.value)),
              h('div', { class: 'small' }, h('a', { href: `#/jobs/${best.job_id}`, 'data-testid': 'best-link' }, `trial #${best.number}`), ' · ', h('span', { class: 'mono', 'data-testid': 'best-params' }, paramsText(best.params))),
            )
          : h('div', { class: 'card-note muted' }, 'no trial has completed yet'),
      ),
    );

    // The objective per trial: complete trials at their value, pruned and failed ones at their
    // last epoch's, marked apart; running ones at their latest epoch's; the best-so-far steps.
    const byState = (state: Trial['state']) => trials.filter((t) => t.state === state && trialPoint(t) !== null);
    const marks = (state: Trial['state'], name: string, marker: 'circle' | 'ring' | 'cross'): Series => {
      const list = byState(state);
      return {
        name,
        color: STATE_COLORS[state],
        line: false,
        marker,
        points: list.map((t) => [t.number, trialPoint(t)!] as [number, number]),
        noLegend: list.length === 0 && state !== 'complete',
        titles: list.map((t) => `trial #${t.number} ${t.state}: ${metric} ${fmtValue(trialPoint(t))}${t.state === 'complete' ? '' : ` at epoch ${t.intermediate_values.length}`} (${paramsText(t.params)})`),
      };
    };
    renderChart(
      trialsChart,
      [
        { name: 'best so far', color: '#f59e0b', points: bestSoFar(trials, direction) },
        marks('complete', 'complete', 'circle'),
        marks('pruned', 'pruned (last epoch)', 'ring'),
        marks('fail', 'failed', 'cross'),
        marks('running', 'running', 'ring'),
      ],
      { xLabel: `trial number · ${metric} (${direction})`, integerX: true },
    );

    // Each trial's objective per epoch: where the pruner stopped the laggards.
    const curves: Series[] = trials
      .filter((t) => t.intermediate_values.some((p) => typeof p.value === 'number'))
      .map((t) => ({
        name: `trial ${t.number}`,
        color: best && t.number === best.number ? '#f59e0b' : t.state === 'complete' ? '#94a3b8' : STATE_COLORS[t.state],
        points: t.intermediate_values.filter((p) => typeof p.value === 'number').map((p) => [p.epoch, p.value!] as [number, number]),
        dots: true,
        dash: t.state === 'pruned' || t.state === 'fail' ? '4 3' : undefined,
        titles: t.intermediate_values.filter((p) => typeof p.value === 'number').map((p) => `trial #${t.number}, epoch ${p.epoch}: ${metric} ${fmtValue(p.value)}`),
        noLegend: true,
      }));
    const legendOnly = (name: string, color: string): Series => ({ name, color, points: [] });
    renderChart(curvesChart, [...curves, legendOnly('best', '#f59e0b'), legendOnly('complete', '#94a3b8'), legendOnly('pruned', STATE_COLORS.pruned), legendOnly('failed', STATE_COLORS.fail), legendOnly('running', STATE_COLORS.running)], { xLabel: `epoch · ${metric}`, integerX: true });

    // The trials table.
    const epochs = Number(job.hyperparameters?.epochs ?? 0);
    const table = h('table', { class: 'table compact', 'data-testid': 'trials' });
    table.append(h('thead', {}, h('tr', {}, ...['Trial', 'State', 'Job status', ...names, metric, 'Epochs', 'Run time'].map((c) => h('th', { class: names.includes(c) ? 'mono' : '' }, c)))));
    const body = h('tbody');
    for (const t of [...trials].sort((a, b) => a.number - b.number)) {
      const isBest = best !== null && t.number === best.number;
      const started = t.started_at ? Date.parse(t.started_at) : null;
      const ended = t.finished_at ? Date.parse(t.finished_at) : null;
      const shown = t.value ?? null;
      const last = trialPoint(t);
      body.append(
        h(
          'tr',
          { 'data-trial': t.number, 'data-state': t.state, 'data-status': t.status, class: isBest ? 'best-row' : '' },
          h('td', {}, h('a', { href: `#/jobs/${t.job_id}`, title: t.job_id }, `#${t.number}`), isBest ? h('span', { class: 'star', title: 'the best trial' }, ' ★') : ''),
          h('td', {}, stateBadge(t.state)),
          h('td', {}, badge(t.status)),
          ...names.map((k) => h('td', { class: 'mono', 'data-param': k }, k in (t.params ?? {}) ? fmtParam(t.params[k]) : '–')),
          h('td', { 'data-testid': 'trial-value', 'data-value': shown ?? '' }, shown !== null ? fmtValue(shown) : last !== null ? h('span', { class: 'muted', title: 'the last epoch reported' }, `(${fmtValue(last)})`) : '–'),
          h('td', { 'data-testid': 'trial-epochs' }, `${t.intermediate_values.length}${epochs ? `/${epochs}` : ''}`),
          h('td', {}, started ? duration(((ended ?? Date.now()) - started) / 1000) : '–'),
        ),
      );
      if (t.error && t.state === 'fail') body.append(h('tr', { class: 'trial-error' }, h('td', { colspan: names.length + 6, class: 'muted small' }, `#${t.number}: ${t.error.code}: ${t.error.message}`)));
    }
    table.append(body);
    trialsTable.replaceChildren(trials.length ? table : h('p', { class: 'muted' }, 'No trial yet: the study asks for the first when the search starts.'));

    // Importances (fANOVA), once the study is done.
    const imp = Object.entries((job.importances ?? {}) as Record<string, number>).sort((a, b) => b[1] - a[1]);
    importances.replaceChildren(
      imp.length
        ? h(
            'div',
            { class: 'bars' },
            ...imp.map(([k, v]) => h('div', { class: 'bar-row', 'data-param': k }, h('span', { class: 'mono bar-name' }, k), h('span', { class: 'hbar' }, h('span', { class: 'hbar-fill', style: `width:${(100 * Math.max(0, Math.min(1, v))).toFixed(1)}%` })), h('span', { class: 'bar-value' }, v.toFixed(3)))),
          )
        : h('p', { class: 'muted' }, TERMINAL.has(job.status) ? 'No importances: they need at least two complete trials.' : "Optuna's fANOVA importances of each parameter, when the search ends."),
    );

    // The search: the space and the study's settings.
    const pruner = typeof search.pruner === 'string' ? { type: search.pruner } : (search.pruner ?? {});
    space.replaceChildren(
      h(
        'table',
        { class: 'table compact' },
        ...Object.entries((search.space ?? {}) as Json).map(([k, spec]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', {}, describeSpace(spec)))),
        h('tr', {}, h('td', {}, 'trials'), h('td', {}, `${search.trials}, ${search.parallelism ?? 1} at a time`)),
        h('tr', {}, h('td', {}, 'sampler'), h('td', {}, `${search.sampler ?? 'tpe'}${search.seed !== undefined && search.seed !== null ? `, seed ${search.seed}` : ''}`)),
        h('tr', {}, h('td', {}, 'pruner'), h('td', {}, Object.entries(pruner).map(([k, v]) => (k === 'type' ? String(v) : `${k} ${v}`)).join(', ') || 'median')),
      ),
    );
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

  /** A tune job's record and trials, fetched together. */
  const refreshTune = async () => {
    const [j, t] = await Promise.all([getJson<Json>(`/v1/jobs/${id}`, { signal }), getJson<{ data: Trial[] }>(`/v1/jobs/${id}/trials`, { signal })]);
    if (signal.aborted) return;
    job = j;
    trials = t.data;
    renderHeader();
    renderProgress();
    renderHeadline();
    renderTune();
  };
  // The tune job's events say when a trial is queued or ends: refresh soon after one.
  let nudged: ReturnType<typeof setTimeout> | null = null;
  const nudge = () => {
    nudged ??= setTimeout(() => {
      nudged = null;
      if (!signal.aborted) void refreshTune().catch(() => {});
    }, 300);
  };
  /** A trial's state in the study is told a moment after its job ends: fetch until it is. */
  const settleTrial = async () => {
    for (let i = 0; i < 20 && !signal.aborted && kindOf(job) === 'trial' && TERMINAL.has(job.status) && job.trial && !job.trial.told; i++) {
      await sleep(1500);
      job = await getJson<Json>(`/v1/jobs/${id}`, { signal });
      renderHeader();
    }
  };

  const loadFinal = async () => {
    job = await getJson<Json>(`/v1/jobs/${id}`, { signal });
    if (isTune) trials = (await getJson<{ data: Trial[] }>(`/v1/jobs/${id}/trials`, { signal })).data;
    renderAll();
    void settleTrial().catch(() => {});
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
    if (isTune && e.type === 'log') nudge();
    schedule();
  };

  renderAll();
  if (job.status === 'succeeded') void loadFinal().catch(() => {});
  else void settleTrial().catch(() => {});
  // A tune job's study moves without events of its own: poll it (and its trials) until it ends.
  if (isTune) {
    void (async () => {
      while (!signal.aborted) {
        await refreshTune().catch(() => {});
        if (TERMINAL.has(job.status)) break;
        await sleep(3000);
      }
    })();
  }
  try {
    await followEvents(id, onEvent, signal);
  } catch (err) {
    if (!signal.aborted) header.append(errorBox(err));
  }
}

setupKeyForm();
window.addEventListener('hashchange', route);
route();
