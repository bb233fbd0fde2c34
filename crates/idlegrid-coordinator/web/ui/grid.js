// Operators: the grid at a glance — current numbers and charts over the last 30 minutes.

import { api } from './api.js';
import { alertSlot, counts, h, heading, replace } from './dom.js';
import { lineChart } from './charts.js';

export async function gridView(main, _params, { isCurrent }) {
  main.append(heading('Grid'));
  const alerts = alertSlot();
  const now = h('section', { class: 'card', 'aria-labelledby': 'now-h' }, h('h2', { id: 'now-h' }, 'Now'), h('p', { class: 'muted' }, 'Loading…'));
  const charts = h('section', { class: 'charts', 'aria-labelledby': 'charts-h' }, h('h2', { id: 'charts-h' }, 'The last 30 minutes'));
  const chartBody = h('div', { class: 'chart-grid' });
  charts.append(chartBody);
  main.append(alerts.el, now, charts);

  let timer = null;
  let stopped = false;
  async function load() {
    let stats;
    try {
      stats = await api('/v1/grid/stats');
      alerts.clear();
    } catch (e) {
      alerts.show(e, 'The grid statistics could not be loaded');
      schedule(10);
      return;
    }
    if (!isCurrent() || stopped) return;
    render(stats);
    schedule(Math.max(2, stats.interval_secs || 2));
  }
  function schedule(seconds) {
    if (!stopped) timer = setTimeout(load, seconds * 1000);
  }
  function render(stats) {
    const samples = stats.samples || [];
    const last = samples[samples.length - 1];
    const num = (v) => (v === undefined || v === null ? '—' : String(Math.round(v * 100) / 100));
    replace(now, h('h2', { id: 'now-h' }, 'Now'), last ? counts([
      ['Devices online', num(last.devices_online)],
      ['Devices busy', num(last.devices_busy)],
      ['Jobs running', num(last.jobs_running)],
      ['Tasks queued', num(last.tasks_queued)],
      ['Tasks leased', num(last.tasks_leased)],
      ['Completed per second', num(last.completed_per_sec)],
      ['Failed per second', num(last.failed_per_sec)],
      ['Reassigned per second', num(last.reassigned_per_sec)],
    ]) : h('p', { class: 'muted' }, 'No samples yet: the coordinator samples every few seconds.'));
    const times = samples.map((s) => Date.parse(s.at));
    const pick = (f) => samples.map((s) => Number(f(s)));
    const stage = (name) => pick((s) => (s.stages || {})[name] ?? NaN);
    replace(chartBody,
      lineChart({ title: 'Devices', times, digits: 0, unit: 'devices', series: [
        { name: 'online', values: pick((s) => s.devices_online) },
        { name: 'busy', values: pick((s) => s.devices_busy) }] }),
      lineChart({ title: 'Tasks completed per second', times, unit: 'per second', series: [
        { name: 'completed', values: pick((s) => s.completed_per_sec) }] }),
      lineChart({ title: 'Queue depth per stage', times, digits: 0, unit: 'waiting', series: [
        { name: 'partition', values: stage('partition') },
        { name: 'feed', values: stage('feed') },
        { name: 'validate', values: stage('validate') },
        { name: 'assemble', values: stage('assemble') }] }),
      lineChart({ title: 'Failures and reassignments per second', times, unit: 'per second', series: [
        { name: 'failed', values: pick((s) => s.failed_per_sec) },
        { name: 'reassigned', values: pick((s) => s.reassigned_per_sec) }] }));
  }
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}
