// The formatters the CLI and the dashboard share. `none` is what a missing value prints as: the
// CLI's plain '-', the dashboard's '–'.

/** h:mm:ss, or m:ss under an hour. */
export function formatDuration(seconds: number, none = '--:--'): string {
  if (!Number.isFinite(seconds) || seconds < 0) return none;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** 1024-based: "512 B", "1.5 MiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A metric (accuracy, F1, loss) with fixed digits. */
export const formatMetric = (v: unknown, digits = 3, none = '-'): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : none);

/** An objective value: four significant digits. */
export const formatValue = (v: unknown, none = '-'): string => (typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(4))) : none);

/** A searched value: whole numbers as they are, small floats in exponent form (learning rates). */
export function formatParam(v: unknown): string {
  if (typeof v !== 'number') return typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (Number.isInteger(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** "learning_rate=2.41e-4, warmup_ratio=0.09". */
export const formatParams = (params: Record<string, unknown> | null | undefined): string =>
  Object.entries(params ?? {})
    .map(([k, v]) => `${k}=${formatParam(v)}`)
    .join(', ');
