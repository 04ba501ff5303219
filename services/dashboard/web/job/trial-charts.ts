// A tune job's two charts: the objective per trial (with the best-so-far steps) and each trial's
// objective per epoch, where the pruner stopped the laggards.
import type { Trial } from '@makam/client/types';
import { renderChart, type Series } from '../chart.ts';
import { formatParams } from '@makam/client/format';
import { fmtValue, h, STATE_COLORS } from '../dom.ts';
import { studyOf, trialPoint } from './study.ts';
import type { JobView, Panel } from './view.ts';

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

/** The objective per trial: complete trials at their value, pruned and failed ones at their last epoch's, marked apart; running ones at their latest epoch's; the best-so-far steps. */
export function objectivePerTrialPanel(): Panel {
  const el = h('div', { 'data-testid': 'trials-chart' });
  return {
    el,
    render: (view: JobView) => {
      const { trials } = view;
      const { metric, direction } = studyOf(view);
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
          titles: list.map((t) => `trial #${t.number} ${t.state}: ${metric} ${fmtValue(trialPoint(t))}${t.state === 'complete' ? '' : ` at epoch ${t.intermediate_values.length}`} (${formatParams(t.params)})`),
        };
      };
      renderChart(
        el,
        [
          { name: 'best so far', color: '#f59e0b', points: bestSoFar(trials, direction) },
          marks('complete', 'complete', 'circle'),
          marks('pruned', 'pruned (last epoch)', 'ring'),
          marks('fail', 'failed', 'cross'),
          marks('running', 'running', 'ring'),
        ],
        { xLabel: `trial number · ${metric} (${direction})`, integerX: true },
      );
    },
  };
}

/** Each trial's objective per epoch: where the pruner stopped the laggards. */
export function objectivePerEpochPanel(): Panel {
  const el = h('div', { 'data-testid': 'trial-curves' });
  return {
    el,
    render: (view: JobView) => {
      const { metric, best } = studyOf(view);
      const curves: Series[] = view.trials
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
      renderChart(el, [...curves, legendOnly('best', '#f59e0b'), legendOnly('complete', '#94a3b8'), legendOnly('pruned', STATE_COLORS.pruned), legendOnly('failed', STATE_COLORS.fail), legendOnly('running', STATE_COLORS.running)], { xLabel: `epoch · ${metric}`, integerX: true });
    },
  };
}
