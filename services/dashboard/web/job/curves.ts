// A finetune job's live curves: train and validation loss per step, validation metrics per epoch.
import { renderChart, type Series } from '../chart.ts';
import { h } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

export function curvesPanel(): Panel {
  const lossChart = h('div', { 'data-testid': 'loss-chart' });
  const metricChart = h('div', { 'data-testid': 'metric-chart' });
  const el = h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Loss'), lossChart), h('div', { class: 'panel' }, h('h3', {}, 'Validation metrics per epoch'), metricChart));
  return {
    el,
    render: ({ isTune, live }: JobView) => {
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
    },
  };
}
