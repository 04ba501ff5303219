// A finetune job's live curves: train and validation loss per step, validation metrics per epoch,
// and with mlm_epochs the masked-LM phase's loss per epoch.
import { renderChart, type Series } from '../chart.ts';
import { h } from '../dom.ts';
import type { JobView, Panel } from './view.ts';

export function curvesPanel(): Panel {
  const lossChart = h('div', { 'data-testid': 'loss-chart' });
  const metricChart = h('div', { 'data-testid': 'metric-chart' });
  const mlmChart = h('div', { 'data-testid': 'mlm-chart' });
  const mlmPanel = h('div', { class: 'panel', hidden: true }, h('h3', {}, 'Masked-LM pretraining: loss per epoch'), mlmChart);
  const el = h('section', { class: 'grid2' }, h('div', { class: 'panel' }, h('h3', {}, 'Loss'), lossChart), h('div', { class: 'panel' }, h('h3', {}, 'Validation metrics per epoch'), metricChart), mlmPanel);
  return {
    el,
    render: ({ isTune, live, job }: JobView) => {
      if (isTune) return;
      if (Number(job.hyperparameters?.mlm_epochs ?? 0) > 0 || live.mlmLoss.length) {
        mlmPanel.hidden = false;
        renderChart(mlmChart, [{ name: 'MLM loss', color: '#0891b2', points: live.mlmLoss, dots: true, titles: live.mlmLoss.map(([e, v]) => `epoch ${e}: ${v.toFixed(4)}`) }], { xLabel: 'masked-LM epoch', integerX: true });
      }
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
