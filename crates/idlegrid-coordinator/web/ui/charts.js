// SVG line charts drawn here (no library), each with a text alternative: a caption with the
// latest values and a visually hidden table of the recent points.

import { h, uid } from './dom.js';

const W = 640;
const H = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

/** A round number at or above `v` for the top of the axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  const m = v / exp;
  const step = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
  return step * exp;
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function fmt(v, digits) {
  if (!Number.isFinite(v)) return '—';
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/**
 * A chart of several series over time. `times`: epoch milliseconds; `series`: [{ name, values }];
 * `unit`: words after the numbers in the caption; `digits`: decimals shown.
 */
export function lineChart({ title, times, series, unit = '', digits = 2, tableRows = 10 }) {
  const id = uid('chart');
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  const max = niceMax(Math.max(0, ...all));
  const t0 = times[0] ?? Date.now();
  const t1 = times[times.length - 1] ?? t0;
  const span = Math.max(1, t1 - t0);
  const x = (t) => PAD.left + ((t - t0) / span) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);

  const gridLines = [0, 0.5, 1].map((f) => {
    const v = max * f;
    return h('g', { class: 'tick' },
      h('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      h('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, Number.isInteger(v) ? String(v) : v.toFixed(max < 1 ? 2 : 1)));
  });
  const xLabels = times.length ? [
    h('text', { x: PAD.left, y: H - 8, 'text-anchor': 'start' }, clock(t0)),
    h('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, clock(t1)),
  ] : [h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data yet')];
  const lines = series.map((s, i) => {
    const points = s.values.map((v, j) => (Number.isFinite(v) ? `${x(times[j]).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean);
    if (points.length === 1) {
      const [px, py] = points[0].split(',');
      return h('circle', { class: `series series-${i}`, cx: px, cy: py, r: 3, dataset: { points: '1' } });
    }
    return h('polyline', { class: `series series-${i}`, points: points.join(' '), fill: 'none', dataset: { points: String(points.length) } });
  });
  const svg = h('svg', {
    viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-caption`, class: 'chart',
    dataset: { points: String(times.length), max: String(Math.max(0, ...all)) },
  }, h('title', { id: `${id}-title` }, title), h('g', { class: 'axis' }, gridLines, xLabels), lines);

  const latest = series.map((s) => `${s.name} ${fmt(s.values[s.values.length - 1], digits)}`).join(', ');
  const legend = series.length > 1 ? h('ul', { class: 'chart-legend' },
    series.map((s, i) => h('li', {}, h('span', { class: `swatch series-${i}`, 'aria-hidden': 'true' }), s.name))) : null;
  const recent = times.slice(-tableRows).map((t, k) => {
    const j = times.length - Math.min(tableRows, times.length) + k;
    return h('tr', {}, h('th', { scope: 'row' }, clock(t)), series.map((s) => h('td', {}, fmt(s.values[j], digits))));
  });
  const table = h('div', { class: 'sr-only' }, h('table', {},
    h('caption', {}, `${title}: the last ${recent.length} samples`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), series.map((s) => h('th', { scope: 'col' }, s.name)))),
    h('tbody', {}, recent)));
  return h('figure', { class: 'chart-figure', dataset: { chart: title } },
    h('h3', {}, title), svg, legend,
    h('figcaption', { id: `${id}-caption` }, times.length ? `Latest (${clock(t1)}): ${latest}${unit ? ` ${unit}` : ''}.` : 'No samples yet.'),
    table);
}
