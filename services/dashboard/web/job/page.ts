// A job's page: it places the panels (one module each in this folder), keeps the state they draw
// from (view.ts) current, and decides which panels redraw on what: the event stream (live curves,
// progress, log), a tune job's poll (its study and trials), and the final fetch once the job ends.
import { client, followEvents } from '../api.ts';
import { TERMINAL } from '@makam/client/jobs';
import { errorBox, h, kindOf, sleep } from '../dom.ts';
import { curvesPanel } from './curves.ts';
import { evaluationOf, evaluationPanel } from './evaluation.ts';
import { eventsLogPanel } from './events-log.ts';
import { headerPanel, summaryPanel, trialOfPanel } from './header.ts';
import { headlinePanel } from './headline.ts';
import { hyperparametersPanel } from './hyperparameters.ts';
import { modelCardPanel } from './model-card.ts';
import { progressPanel } from './progress.ts';
import { importancesPanel, searchSpacePanel } from './search.ts';
import { studyBestPanel } from './study-best.ts';
import { objectivePerEpochPanel, objectivePerTrialPanel } from './trial-charts.ts';
import { trialsTablePanel } from './trials-table.ts';
import { applyEvent, freshLive, type JobView, type Panel } from './view.ts';

const section = (title: string, panel: Panel) => h('div', { class: 'panel' }, h('h3', {}, title), panel.el);

export async function jobPage(root: HTMLElement, id: string, signal: AbortSignal): Promise<void> {
  document.title = `${id} · makam`;
  let job;
  try {
    job = await client.getJob(id, { signal });
  } catch (err) {
    if (!signal.aborted) root.replaceChildren(h('p', {}, h('a', { href: '#/' }, '← Jobs')), errorBox(err));
    return;
  }
  if (signal.aborted) return;
  const isTune = kindOf(job) === 'tune';
  const view: JobView = { id, isTune, signal, job, trials: [], live: freshLive(), metricsJson: null, card: null };

  const header = headerPanel(view, () => drawHeader());
  const trialOf = trialOfPanel();
  const summary = summaryPanel();
  const progress = progressPanel();
  const headline = headlinePanel();
  const curves = curvesPanel();
  const evaluation = evaluationPanel();
  const hyper = hyperparametersPanel();
  const log = eventsLogPanel();
  const card = modelCardPanel();
  // A tune job's study: best so far, trials plot, trials table, importances, search.
  const studyBest = studyBestPanel();
  const perTrial = objectivePerTrialPanel();
  const perEpoch = objectivePerEpochPanel();
  const trialsTable = trialsTablePanel();
  const importances = importancesPanel();
  const space = searchSpacePanel();
  const tunePanels = isTune ? [studyBest, perTrial, perEpoch, trialsTable, importances, space] : [];

  root.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← Jobs')),
    header.el,
    trialOf.el,
    summary.el,
    progress.el,
    isTune ? h('section', {}, studyBest.el) : '',
    h('section', {}, h('h2', {}, isTune ? "Results (the best trial's)" : 'Results'), headline.el),
    isTune
      ? h(
          'div',
          { id: 'tune-trials' },
          h('section', { class: 'grid2' }, section('Objective per trial', perTrial), section('Objective per epoch, each trial', perEpoch)),
          h('section', { class: 'panel' }, h('h3', {}, 'Trials'), trialsTable.el),
          h('section', { class: 'grid2' }, section('Parameter importances', importances), section('Search', space)),
        )
      : curves.el,
    evaluation.el,
    h('section', { class: 'grid2' }, section(isTune ? 'Hyperparameters (fixed; the searched ones are in the trials)' : 'Hyperparameters', hyper), section('Events', log)),
    h('section', { class: 'panel' }, h('h3', {}, 'Model card'), card.el),
  );

  const draw = (...panels: Panel[]) => {
    for (const p of panels) p.render(view);
  };
  const drawHeader = () => draw(header, trialOf, summary);
  const drawAll = () => draw(header, trialOf, summary, progress, headline, curves, evaluation, hyper, log, ...tunePanels, card);

  // Live events redraw the curves, progress and log once per frame.
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (signal.aborted) return;
      draw(progress, curves, log);
    });
  };

  /** A tune job's record and trials, fetched together. */
  const refreshTune = async () => {
    const [j, t] = await Promise.all([client.getJob(id, { signal }), client.listTrials(id, { signal })]);
    if (signal.aborted) return;
    view.job = j;
    view.trials = t.data;
    drawHeader();
    draw(progress, headline, ...tunePanels);
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
    for (let i = 0; i < 20 && !signal.aborted && kindOf(view.job) === 'trial' && TERMINAL.has(view.job.status) && view.job.trial && !view.job.trial.told; i++) {
      await sleep(1500);
      view.job = await client.getJob(id, { signal });
      drawHeader();
    }
  };

  const loadFinal = async () => {
    view.job = await client.getJob(id, { signal });
    if (isTune) view.trials = (await client.listTrials(id, { signal })).data;
    drawAll();
    void settleTrial().catch(() => {});
    if (view.job.status !== 'succeeded') return;
    const [m, c] = await Promise.allSettled([
      evaluationOf(view.job.result, null) ? Promise.resolve(null) : client.modelFile(id, 'metrics.json', { signal }).then((r) => r.json()),
      client.modelFile(id, 'README.md', { signal }).then((r) => r.text()),
    ]);
    if (signal.aborted) return;
    if (m.status === 'fulfilled' && m.value) view.metricsJson = m.value;
    view.card = c.status === 'fulfilled' ? c.value : null;
    if (!view.card) card.missing();
    draw(evaluation);
    if (view.card) draw(card);
  };

  const onEvent = (e: Parameters<typeof applyEvent>[1]) => {
    applyEvent(view, e);
    if (e.type === 'metrics' && !TERMINAL.has(view.job.status)) draw(headline);
    if (e.type === 'status') {
      drawHeader();
      if (TERMINAL.has(e.data.status)) void loadFinal().catch(() => {});
    }
    if (isTune && e.type === 'log') nudge();
    schedule();
  };

  drawAll();
  if (view.job.status === 'succeeded') void loadFinal().catch(() => {});
  else void settleTrial().catch(() => {});
  // A tune job's study moves without events of its own: poll it (and its trials) until it ends.
  if (isTune) {
    void (async () => {
      while (!signal.aborted) {
        await refreshTune().catch(() => {});
        if (TERMINAL.has(view.job.status)) break;
        await sleep(3000);
      }
    })();
  }
  try {
    await followEvents(id, onEvent, signal);
  } catch (err) {
    if (!signal.aborted) header.el.append(errorBox(err));
  }
}
